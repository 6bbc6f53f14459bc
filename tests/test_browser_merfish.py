"""A real browser on the real data: JupyterLab at 1366 x 768 (a laptop screen) in Debian
Chromium runs ``examples/04_merfish_first_hour.ipynb`` (the shipped MERFISH young/old
sections), and in the rendered panel a user asks do(age=old) for the cells with age=young,
chosen with the Cells / Column / Label controls; the overlay image must appear, in both the
factual | counterfactual and the difference view, with no traceback.

``CAUSCELL_DOCS_SCREENSHOTS=1`` writes the page as seen to
``docs/images/jupyterlab_merfish_1366x768.png``.
"""

from __future__ import annotations

import os
import re
import shutil

import numpy as np
import pytest
from test_browser import (
    CHROMIUM,
    CHROMIUM_FLAGS,
    ROOT,
    count_tracebacks,
    run_all_cells,
    serve_notebook,
)

pytestmark = pytest.mark.browser

NOTEBOOK = ROOT / "examples" / "04_merfish_first_hour.ipynb"
SIZE = {"width": 1366, "height": 768}
#: the overlay image's ``src`` once it is shown, decoded and other than ``old`` (a redraw)
OVERLAY_SRC = """(old) => { const i = document.querySelector('img.causcell-overlay');
    const ok = i && i.complete && i.naturalWidth > 200 && i.offsetParent !== null;
    return ok && i.src !== old ? i.src : ''; }"""


@pytest.fixture()
def jupyterlab_merfish(tmp_path):
    """JupyterLab serving the MERFISH first-hour notebook."""
    with serve_notebook(tmp_path, NOTEBOOK) as server:
        yield server


def _select(page, label: str, value: str) -> None:
    """Choose ``value`` in the visible dropdown described as ``label`` (waits until offered)."""
    exact = page.locator("label.widget-label", has_text=re.compile(rf"^{re.escape(label)}$"))
    page.locator(".widget-dropdown:visible").filter(has=exact).first.locator(
        "select").select_option(value, timeout=60_000)


def _intervene_old_on_young(page) -> None:
    """In the Intervene tab: do(age=old) on the cells with age=young, as a user clicks it."""
    button = page.locator("button.causcell-intervene")
    button.wait_for(state="visible", timeout=150_000)
    button.scroll_into_view_if_needed()
    assert button.is_enabled()
    _select(page, "Concept", "age")
    _select(page, "Set to", "old")
    _select(page, "Cells", "cells with a label")
    _select(page, "Column", "age")
    _select(page, "Label", "young")  # offered once the kernel has filled in age's labels
    button.click()


def _show_panel(page) -> None:
    """Scroll the notebook so that the panel's first line is at the top of the window."""
    page.locator(".widget-tab").first.evaluate(
        "t => t.parentElement.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)


def test_merfish_panel_at_1366x768(jupyterlab_merfish, tmp_path):
    from matplotlib.image import imread
    from playwright.sync_api import sync_playwright

    url, token = jupyterlab_merfish
    shot, diff = tmp_path / "merfish_1366x768.png", tmp_path / "merfish_difference.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport=SIZE)
            run_all_cells(page, url, token, NOTEBOOK.name)
            # a laptop screen: the file browser folded away, as a user makes room
            page.evaluate("() => { const s = window.jupyterapp.shell;"
                          " if (!s.leftCollapsed) s.collapseLeft(); }")
            _intervene_old_on_young(page)
            first = page.wait_for_function(OVERLAY_SRC, arg="", timeout=120_000).json_value()
            assert page.locator(".widget-tab select >> text=do(age=old)").count() >= 1
            assert count_tracebacks(page) == 0
            _show_panel(page)
            page.screenshot(path=str(shot))
            page.locator(".widget-toggle-button", has_text=re.compile("^difference$")).click()
            page.wait_for_function(OVERLAY_SRC, arg=first, timeout=60_000)
            _show_panel(page)
            page.screenshot(path=str(diff))
            assert count_tracebacks(page) == 0
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"))
            print("browser state at the failure:", tmp_path / "failure.png")
            raise
        finally:
            browser.close()
    print("screenshots:", shot, diff)
    for path in (shot, diff):
        img = imread(path)
        assert img.shape[:2] == (SIZE["height"], SIZE["width"])
        assert len(np.unique((img[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 100
    if os.environ.get("CAUSCELL_DOCS_SCREENSHOTS") == "1":
        shutil.copy(shot, ROOT / "docs" / "images" / "jupyterlab_merfish_1366x768.png")
