"""Training loops and data sampling for the networks in :mod:`celltrail.models`."""
