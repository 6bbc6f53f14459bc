"""Issue 27, "Nothing lost, second round": the command line's and the demo's items 1, 2, 3, 12.

Kill tests run the real command line in a child process that SIGKILLs itself at a named
moment (``CAUSCELL_TEST_KILL_AT``, see ``napari_causcell.io._atomic``). The kill loops at
random instants (>= 20 kills each) are ``scripts/kill_loops.py --item 1`` / ``--item 3``;
they take minutes, so the suite runs the named kill points only.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from napari_causcell import CausCell
from napari_causcell.cli import main
from napari_causcell.errors import DataError

REPO = Path(__file__).resolve().parents[1]
CONCEPTS = ["age", "domain", "cell_type"]
DAG = [("age", "cell_type"), ("domain", "cell_type")]
DEMO = ["demo", "--n-cells", "300", "--epochs", "1", "--steps", "2", "--no-real", "--quiet"]


@pytest.fixture(scope="module")
def disk(tmp_path_factory):
    """A tiny ``data.h5ad`` (raw counts), ``data.zarr`` and a model trained on them."""
    from napari_causcell.datasets import brain_aging

    root = tmp_path_factory.mktemp("safety27")
    sd = brain_aging(n_cells=300, n_genes=60, seed=0)
    sd.tables["table"].write_h5ad(root / "data.h5ad")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sd.write(root / "data.zarr")
    model = CausCell(sd, CONCEPTS, dag=DAG, seed=0, width=32, hidden=64, token_dim=8)
    model.train(max_epochs=1, batch_size=64)
    model.save(root / "model")
    return root


def _run(capsys, *argv) -> tuple[int, str, str]:
    with _watchdog(120):
        rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@contextlib.contextmanager
def _watchdog(seconds: int):
    """Fail instead of hanging forever (a FIFO read blocks)."""
    def alarm(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _one_line_error(rc: int, err: str, fragment: str = "") -> None:
    assert rc == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert fragment in err, err


def _child(argv: list[str], kill_at: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", MPLBACKEND="Agg")
    if kill_at:
        env["CAUSCELL_TEST_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, "-m", "napari_causcell", *map(str, argv)], env=env,
                          capture_output=True, text=True, timeout=600, cwd=REPO)


def _tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its content's checksum (folders: ``"dir"``)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _demo_cells(out: Path) -> int:
    import spatialdata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sd = spatialdata.read_zarr(out / "brain_aging.zarr")
    n_source = int((sd.tables["table"].obs["age"] == "4wk").sum())
    assert sd.tables["causcell_age_90wk"].n_obs == n_source
    return sd.tables["table"].n_obs


# -- 1. the demo's store is written aside and switched into place ---------------------------
@pytest.mark.parametrize("kill_at", ["store-written", "dir-swapped"])
def test_27_1_demo_store_survives_kill(tmp_path, capsys, kill_at):
    out = tmp_path / "dk"
    assert _run(capsys, *DEMO, "--out", out)[0] == 0
    assert _demo_cells(out) == 300
    res = _child([*DEMO, "--out", out, "--n-cells", "330"], kill_at)
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    # the old store (killed before the switch) or the new one (after it), whole
    assert _demo_cells(out) == (300 if kill_at == "store-written" else 330)
    # the next run removes what the killed one left and succeeds
    assert _run(capsys, *DEMO, "--out", out, "--n-cells", "330")[0] == 0
    assert _demo_cells(out) == 330
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    CausCell.load(out / "model")


# -- 2. the demo checks every output before writing any -------------------------------------
def _foreign_model(out: Path) -> None:
    (out / "model").mkdir()
    (out / "model" / "notes.txt").write_text("mine")


def _store_is_file(out: Path) -> None:
    shutil.rmtree(out / "brain_aging.zarr")
    (out / "brain_aging.zarr").write_text("not a store")


def _store_not_zarr(out: Path) -> None:
    shutil.rmtree(out / "brain_aging.zarr")
    (out / "brain_aging.zarr").mkdir()
    (out / "brain_aging.zarr" / "thesis.txt").write_text("mine")


def _dir_named(name: str):
    def make(out: Path) -> None:
        (out / name).mkdir()
        (out / name / "keep.txt").write_text("mine")
    return make


@pytest.mark.parametrize(("setup", "fragment"), [
    (_foreign_model, "holds other files than a model"),
    (_store_is_file, "brain_aging.zarr exists and is not a folder"),
    (_store_not_zarr, "brain_aging.zarr is a folder but not a .zarr store"),
    (_dir_named("loss.png"), "loss.png is a folder"),
    (_dir_named("metrics.json"), "metrics.json is a folder"),
    (_dir_named("merfish_loss.png"), "merfish_loss.png is a folder"),
], ids=["model-notes", "store-file", "store-foreign", "png-dir", "json-dir", "merfish-dir"])
def test_27_2_demo_refuses_before_writing_anything(disk, tmp_path, capsys, setup, fragment):
    out = tmp_path / "udir"
    out.mkdir()
    shutil.copytree(disk / "data.zarr", out / "brain_aging.zarr")
    setup(out)
    before = _tree(out)
    argv = [a for a in DEMO if a != "--no-real"] if "merfish" in fragment else DEMO
    rc, _, err = _run(capsys, *argv, "--out", out)
    _one_line_error(rc, err, fragment)
    assert _tree(out) == before  # nothing written, nothing replaced
    assert "Simulating" not in err


# -- 3. counterfactual --out never replaces the input ---------------------------------------
@pytest.mark.parametrize("how", ["same-path", "other-spelling", "symlink", "hardlink"])
def test_27_3_counterfactual_never_replaces_the_input(disk, tmp_path, capsys, how):
    data = tmp_path / "in.h5ad"
    shutil.copy(disk / "data.h5ad", data)
    out = {"same-path": data, "other-spelling": tmp_path / "sub" / ".." / "in.h5ad",
           "symlink": tmp_path / "link.h5ad", "hardlink": tmp_path / "hard.h5ad"}[how]
    (tmp_path / "sub").mkdir()
    if how == "symlink":
        out.symlink_to(data)
    elif how == "hardlink":
        os.link(data, out)
    sha = _sha(data)
    rc, _, err = _run(capsys, "counterfactual", disk / "model", data, "--do", "age=90wk",
                      "--where", "age=4wk", "--out", out, "--overwrite", "--steps", "2")
    _one_line_error(rc, err, "is the input DATA")
    assert _sha(data) == sha and not data.is_symlink()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_27_3_zarr_input_as_output_still_adds_the_table(disk, tmp_path, capsys):
    store = tmp_path / "data.zarr"
    shutil.copytree(disk / "data.zarr", store)
    rc, _, err = _run(capsys, "counterfactual", disk / "model", store, "--do", "age=90wk",
                      "--where", "age=4wk", "--out", store, "--key", "cf", "--steps", "2")
    assert rc == 0, err
    import spatialdata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sd = spatialdata.read_zarr(store)
    assert sd.tables["table"].n_obs == 300 and sd.tables["cf"].n_obs == 100


def test_27_3_other_output_replaced_old_or_new_after_kill(disk, tmp_path, capsys):
    """The kill loop's guarantee at its named point; temporaries of killed runs are removed
    by the next run."""
    import anndata as ad

    data = tmp_path / "in.h5ad"
    shutil.copy(disk / "data.h5ad", data)
    sha = _sha(data)
    out = tmp_path / "other.h5ad"
    base = ["counterfactual", disk / "model", data, "--do", "age=90wk", "--out", out,
            "--steps", "2", "--overwrite"]
    assert _run(capsys, *base, "--where", "age=4wk")[0] == 0
    res = _child([*base, "--where", "age=24wk,90wk"], "h5ad-written")
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    assert ad.read_h5ad(out).n_obs == 100 and _sha(data) == sha
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".other.h5ad")]
    assert _run(capsys, *base, "--where", "age=24wk,90wk")[0] == 0
    assert ad.read_h5ad(out).n_obs == 200 and _sha(data) == sha
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# -- 12. non-regular inputs and --top < 1 are refused before any work ----------------------
@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe.h5ad"
    os.mkfifo(path)
    return path


def test_27_12_fifo_as_data_is_refused(disk, tmp_path, capsys, fifo):
    rc, _, err = _run(capsys, "counterfactual", disk / "model", fifo, "--do", "age=90wk",
                      "--out", tmp_path / "cf.h5ad")
    _one_line_error(rc, err, "is a FIFO")
    rc, _, err = _run(capsys, "train", fifo, "--concepts", "age", "--out", tmp_path / "m")
    _one_line_error(rc, err, "is a FIFO")
    assert not (tmp_path / "m").exists() and not (tmp_path / "cf.h5ad").exists()
    from napari_causcell.io import read_data

    with _watchdog(60), pytest.raises(DataError, match="FIFO"):
        read_data(fifo)


def test_27_12_fifo_inside_model_or_store_is_refused(disk, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(disk / "model", model)
    (model / "model.pt").unlink()
    os.mkfifo(model / "model.pt")
    rc, _, err = _run(capsys, "info", model)
    _one_line_error(rc, err, "not a regular file")
    rc, _, err = _run(capsys, "counterfactual", model, disk / "data.h5ad", "--do", "age=90wk",
                      "--out", tmp_path / "cf.h5ad")
    _one_line_error(rc, err, "not a regular file")
    store = tmp_path / "data.zarr"
    shutil.copytree(disk / "data.zarr", store)
    meta = store / "tables" / "table" / "zarr.json"
    meta.unlink()
    os.mkfifo(meta)
    rc, _, err = _run(capsys, "counterfactual", disk / "model", store, "--do", "age=90wk",
                      "--out", tmp_path / "cf.h5ad")
    _one_line_error(rc, err, "not a regular file")


@pytest.mark.parametrize("top", ["-1", "0"])
def test_27_12_top_below_one_is_refused(disk, tmp_path, capsys, top):
    out = tmp_path / "cf.h5ad"
    rc, _, err = _run(capsys, "counterfactual", disk / "model", disk / "data.h5ad", "--do",
                      "age=90wk", "--out", out, "--top", top)
    _one_line_error(rc, err, "--top must be >= 1")
    assert not out.exists()
