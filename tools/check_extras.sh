#!/usr/bin/env bash
# Install each optional extra of celltrail into a virtual environment that has the core install
# (the README's first command) and smoke-test it: the napari plugin's manifest is found, the
# SLURM cluster class imports, and CZI/ND2/LIF files reach their bioio plugins.
# Usage, from anywhere: bash tools/check_extras.sh [VENV]   (default: .venv of the repository)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-$root/.venv}"
. "$venv/bin/activate"
cd "$root"

echo "== [slurm]"
pip install -q -e ".[slurm]"
python -c "from dask_jobqueue import SLURMCluster; print('dask_jobqueue', SLURMCluster.__name__)"
du -sh "$venv"

echo "== [formats] (czi, nd2, lif)"
pip install -q -e ".[formats]"
python - <<'EOF'
import tempfile
from pathlib import Path

from bioio.plugins import get_plugins

from celltrail.core import InputError, open_sequence

plugins = {entry.entrypoint.name for entries in get_plugins(use_cache=False).values()
           for entry in entries}
assert {"bioio-czi", "bioio-nd2", "bioio-lif"} <= plugins, plugins
# A damaged file of each format reaches its plugin (which refuses it), not the message that
# says the plugin is missing.
with tempfile.TemporaryDirectory() as tmp:
    for suffix in (".czi", ".nd2", ".lif"):
        path = Path(tmp) / f"damaged{suffix}"
        path.write_bytes(b"not an image")
        try:
            open_sequence(path)
        except InputError as err:
            assert "pip install" not in str(err), err
            print(suffix, "->", str(err).split(": ", 1)[1])
EOF
du -sh "$venv"

echo "== [napari]"
pip install -q -e ".[napari]"
python - <<'EOF'
import napari
from npe2 import PluginManager

manager = PluginManager.instance()
manager.discover()
assert "celltrail" in {m.name for m in manager.iter_manifests()}, "celltrail plugin not found"
print("napari", napari.__version__, "with the celltrail plugin")
EOF
du -sh "$venv"
echo "all extras install and import"
