"""The documentation site builds with warnings as errors (Sphinx + myst-nb), with the API
reference generated from docstrings and the example notebooks rendered with their outputs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

import _background

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.docs


def _build(out) -> _background.Job:
    return _background.Job("sphinx", [sys.executable, "-m", "sphinx", "-W", "--keep-going",
                                      "-q", "-b", "html", str(ROOT / "docs"), str(out)],
                           out, timeout=600)


def background_jobs(selected, mktemp):
    """The site is built in the background (tests/_background.py) once collected."""
    have = importlib.util.find_spec("sphinx") and importlib.util.find_spec("myst_nb")
    return [_build(mktemp("site"))] if have else []


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_nb")
    job = _background.result("sphinx", lambda: _build(tmp_path_factory.mktemp("site")))
    assert job.result.returncode == 0, job.result.stderr[-4000:]
    return job.folder


def test_pages_and_notebooks_are_built(site):
    for page in ["index", "install", "napari", "jupyter", "keys", "causal_graph", "brain_aging",
                 "benchmarks", "api"]:
        assert (site / f"{page}.html").is_file(), page
    for nb in sorted((ROOT / "examples").glob("*.ipynb")):
        html = (site / "notebooks" / f"{nb.stem}.html").read_text()
        assert "<img" in html, f"{nb.name} renders no figure"


def test_api_reference_comes_from_the_docstrings(site):
    html = (site / "generated" / "napari_causcell.tl.counterfactual.html").read_text()
    assert "Parameters" in html and "key_added" in html and "autofunction" not in html
    for name in ["napari_causcell.CausCell", "napari_causcell.tl.suggest_dag",
                 "napari_causcell.tl.age_trends", "napari_causcell.jupyter.CausCellPanel",
                 "napari_causcell.pl.counterfactual_overlay"]:
        assert (site / "generated" / f"{name}.html").is_file(), name
