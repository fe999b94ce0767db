"""napari plugin (``pip install celltrail[napari]``): open CTC folders, save labels as a CTC
result and track cells from a dock widget. The manifest is ``napari.yaml`` beside this file."""
