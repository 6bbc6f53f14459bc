"""Sphinx configuration: MyST markdown pages, the example notebooks (with their stored
outputs, not re-executed: the tests execute them) and an API reference from docstrings.

Build (warnings are errors, as in CI):
    .venv/bin/python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from napari_causcell._version import __version__  # noqa: E402

project = "napari-causcell"
author = "napari-causcell developers"
copyright = "2026, napari-causcell developers"
release = version = __version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # outputs are stored; tests/test_notebooks.py executes them
nb_merge_streams = True

autosummary_generate = True
autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False
# the tools list the keys they write into the user's data (scverse style)
napoleon_custom_sections = ["Writes"]

html_theme = "furo"
html_title = f"napari-causcell {release}"
html_static_path: list[str] = []

# The example notebooks live in examples/ (where users find them); copy them in for the build.
_nb_dir = Path(__file__).parent / "notebooks"
_nb_dir.mkdir(exist_ok=True)
for _nb in sorted((ROOT / "examples").glob("*.ipynb")):
    shutil.copy2(_nb, _nb_dir / _nb.name)
