"""Why the Qt / napari tests cannot run here (``None`` when they can): one check for every
module that drives napari (tests/napari/ and the Trends views test)."""

from __future__ import annotations

import importlib.util
import os


#: the laptop screen the napari docks must fit (issue #28): width, height
SCREEN = (1366, 768)


def why_not() -> str | None:
    for mod in ("napari", "pytestqt", "qtpy"):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} is not installed (pip install -e '.[test]')"
    if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        return "the napari tests need an X server (Xvfb), not offscreen Qt"
    if not os.environ.get("DISPLAY"):  # pytest-xvfb sets it; without an X server Qt aborts
        return "no X server: install xvfb and pytest-xvfb, or run under xvfb-run -a"
    return None
