"""Issue 27, "Nothing lost, second round", items 4-6: users' files, zarr v2 stores and
integrity checks that the checked files cannot switch off.

4. only temporaries this package wrote are cleaned up (a user's ``notes.tmp`` is kept);
5. a table is written into a SpatialData v0.1 (zarr v2) store atomically, like into v3;
6. a model claiming ``format_version`` 1 is still verified by what it holds, and a real
   format-1 model loads only with ``allow_unverified=True``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_causcell import CausCell
from napari_causcell.cli import main
from napari_causcell.errors import ModelFileError
from napari_causcell.io import _atomic
from napari_causcell.io._model_dir import check_model_target

CONCEPTS = ["age", "domain", "cell_type"]
DAG = [("age", "cell_type"), ("domain", "cell_type")]
TINY = dict(width=32, hidden=64, token_dim=8)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def disk(tiny_sdata, tiny_model, tmp_path_factory):
    """The tiny data as .h5ad and as a SpatialData v0.1 (zarr v2) store; the model saved."""
    from spatialdata._io.format import SpatialDataContainerFormatV01

    root = tmp_path_factory.mktemp("safety_files")
    tiny_sdata.tables["table"].write_h5ad(root / "data.h5ad")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tiny_sdata.write(root / "v2.zarr", sdata_formats=SpatialDataContainerFormatV01(),
                         update_sdata_path=False)
    tiny_model.save(root / "model")
    return root


def _read_zarr(path):
    import spatialdata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return spatialdata.read_zarr(path)


def _dead_pid() -> int:
    """A process id no process has now."""
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except OSError:
            pass
        pid += 1


# -- 4. files named *.tmp (or like a temporary) that the user made are never deleted ---------
@pytest.mark.parametrize("name", ["notes.tmp", "cache.tmp/"])
def test_4_users_tmp_file_in_model_dir_is_kept(tiny_model, tmp_path, name):
    path = tiny_model.save(tmp_path / "m")
    user = path / name.rstrip("/")
    if name.endswith("/"):
        user.mkdir()
        (user / "a.txt").write_text("mine")
    else:
        user.write_text("mine")
    with pytest.raises(FileExistsError, match=r"holds other files than a model.*\.tmp"):
        check_model_target(path, overwrite=True)
    with pytest.raises(FileExistsError, match="other files than a model"):
        tiny_model.save(path, overwrite=True)
    assert user.exists()
    assert (user / "a.txt" if user.is_dir() else user).read_text() == "mine"
    CausCell.load(path)  # the model there is untouched


def test_4_cli_train_refuses_dir_with_users_tmp_file(disk, tmp_path, capsys):
    out = tmp_path / "m"
    shutil.copytree(disk / "model", out)
    (out / "notes.tmp").write_text("mine")
    rc = main(["train", str(disk / "data.h5ad"), "--concepts", ",".join(CONCEPTS), "--out",
               str(out), "--overwrite", "--epochs", "1", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "notes.tmp" in err and err.count("\n") == 1, err
    assert (out / "notes.tmp").read_text() == "mine"


def test_4_format_1_leftovers_are_replaced(tiny_model, tmp_path):
    """``model.pt.tmp``/``causcell.json.tmp`` are what format 1's interrupted save left."""
    path = tiny_model.save(tmp_path / "m")
    (path / "model.pt.tmp").write_bytes(b"half")
    (path / "causcell.json.tmp").write_text("{")
    tiny_model.save(path, overwrite=True)
    assert sorted(p.name for p in path.iterdir()) == ["causcell.json", "model.pt"]


def test_4_only_own_temporaries_beside_the_target_are_removed(tiny_model, tmp_path):
    path = tiny_model.save(tmp_path / "m")
    users = ["m.tmp", ".m.tmp", ".m.causcell-notes", ".m.causcell-new-1-abc",
             ".m.causcell-new-12-0123456789abX", "m.causcell-new-12-0123456789ab"]
    for name in users:
        (tmp_path / name).write_text("mine")
    ours = tmp_path / f".m{_atomic.TMP_TAG}new-{_dead_pid()}-0123456789ab"
    ours.mkdir()  # what a killed save left
    (ours / "model.pt").write_bytes(b"half")
    tiny_model.save(path, overwrite=True)
    assert not ours.exists()
    for name in users:
        assert (tmp_path / name).read_text() == "mine", name
    assert _atomic.is_own_temporary(_atomic.temp_sibling(path).name, ".m")


# -- 5. a SpatialData v0.1 store (zarr v2) gets its table atomically -------------------------
def _cf_args(disk, store):
    return ["counterfactual", str(disk / "model"), str(store), "--out", str(store), "--do",
            "age=90wk", "--key", "cf", "--steps", "2"]


def _is_v2_table(store: Path, key: str) -> bool:
    return (store / "tables" / key / ".zgroup").is_file() and not (
        store / "tables" / key / "zarr.json").exists()


def test_5_v2_store_table_replaced(disk, tmp_path, capsys):
    store = tmp_path / "v2.zarr"
    shutil.copytree(disk / "v2.zarr", store)
    assert main([*_cf_args(disk, store), "--where", "age=4wk"]) == 0
    assert main([*_cf_args(disk, store), "--where", "age=24wk,90wk", "--overwrite"]) == 0, \
        capsys.readouterr().err
    sdata = _read_zarr(store)
    ages = sdata.tables["table"].obs["age"]
    assert sdata.tables["cf"].n_obs == int(ages.isin(["24wk", "90wk"]).sum())
    assert _is_v2_table(store, "cf") and not (store / "zarr.json").exists()
    assert not [p for p in (store / "tables").iterdir() if p.name.startswith(".causcell")]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("kill_at", ["table-written", "table-swapped"])
def test_5_v2_store_survives_kill_and_retry_succeeds(disk, tmp_path, capsys, kill_at):
    store = tmp_path / "v2.zarr"
    shutil.copytree(disk / "v2.zarr", store)
    assert main([*_cf_args(disk, store), "--where", "age=4wk"]) == 0
    n_old = _read_zarr(store).tables["cf"].n_obs
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore",
               CAUSCELL_TEST_KILL_AT=kill_at)
    res = subprocess.run([sys.executable, "-m", "napari_causcell", *_cf_args(disk, store),
                          "--where", "age=24wk,90wk", "--overwrite"], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    sdata = _read_zarr(store)  # reads after the kill: the old table or the new one
    n_new = int(sdata.tables["table"].obs["age"].isin(["24wk", "90wk"]).sum())
    assert sdata.tables["cf"].n_obs == (n_old if kill_at == "table-written" else n_new)
    assert np.isfinite(np.asarray(sdata.tables["cf"].X)).all()
    assert main([*_cf_args(disk, store), "--where", "age=90wk", "--overwrite"]) == 0, \
        capsys.readouterr().err
    sdata = _read_zarr(store)
    assert sdata.tables["cf"].n_obs == int((sdata.tables["table"].obs["age"] == "90wk").sum())
    assert _is_v2_table(store, "cf")
    assert not [p for p in (store / "tables").iterdir() if p.name.startswith(".causcell")]


@pytest.mark.parametrize("v2", [False, True])
def test_5_store_without_tables_gets_the_whole_group(tiny_sdata, tmp_path, v2):
    import spatialdata
    from spatialdata._io.format import SpatialDataContainerFormatV01

    store = tmp_path / "s.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spatialdata.SpatialData(shapes=dict(tiny_sdata.shapes)).write(
            store, sdata_formats=SpatialDataContainerFormatV01() if v2 else None)
    sdata = _read_zarr(store)
    sdata.tables["t"] = tiny_sdata.tables["table"][:10].copy()
    _atomic.write_table_in_place(sdata, "t")
    assert _read_zarr(store).tables["t"].n_obs == 10
    assert (store / "tables" / "t" / (".zgroup" if v2 else "zarr.json")).is_file()


# -- 6. integrity checks cannot be switched off by the files they check ----------------------
def _edit(path: Path, change) -> None:
    meta = json.loads((path / "causcell.json").read_text())
    change(meta)
    (path / "causcell.json").write_text(json.dumps(meta))


def _strip_weights_checks(path: Path) -> None:
    state = torch.load(path / "model.pt", weights_only=True)
    state.pop("token"), state.pop("settings_sha256")
    torch.save(state, path / "model.pt")


def _damage(meta, what):
    if what == "genes_permuted":
        meta["genes"] = meta["genes"][1:] + meta["genes"][:1]
    elif what == "labels_reversed":
        meta["concepts"]["categories"]["age"] = meta["concepts"]["categories"]["age"][::-1]
    elif what == "log_normalized_flipped":
        meta["log_normalized"] = not meta["log_normalized"]


@pytest.mark.parametrize("what", ["genes_permuted", "labels_reversed", "log_normalized_flipped"])
@pytest.mark.parametrize("how", ["version_only", "meta_checks_removed", "all_checks_removed"])
def test_6_downgrade_does_not_skip_verification(tiny_model, tmp_path, what, how):
    path = tiny_model.save(tmp_path / "m")

    def downgrade(meta):
        _damage(meta, what)
        meta["format_version"] = 1
        if how != "version_only":
            meta.pop("token"), meta.pop("weights_sha256")

    _edit(path, downgrade)
    if how == "all_checks_removed":  # looks like a real format-1 directory: refused unless
        _strip_weights_checks(path)  # the user asks for it explicitly
        with pytest.raises(ModelFileError, match="allow_unverified=True"):
            CausCell.load(path)
    else:  # it has format 2's checks, so it is verified as format 2
        with pytest.raises(ModelFileError, match="do not belong together|changed after saving"):
            CausCell.load(path)


def test_6_real_format_1_loads_only_when_allowed(tiny_model, tmp_path):
    path = tiny_model.save(tmp_path / "m")
    _strip_weights_checks(path)

    def to_v1(meta):
        meta["format_version"] = 1
        meta.pop("token"), meta.pop("weights_sha256")

    _edit(path, to_v1)
    with pytest.raises(ModelFileError, match="format-1.*allow_unverified=True"):
        CausCell.load(path)
    loaded = CausCell.load(path, allow_unverified=True)
    assert loaded.genes == tiny_model.genes
    for a, b in zip(loaded.module.state_dict().values(), tiny_model.module.state_dict().values(),
                    strict=True):
        assert torch.equal(a.cpu(), b.cpu())
    # saving it again gives a verified format-2 directory
    again = loaded.save(tmp_path / "m2")
    assert json.loads((again / "causcell.json").read_text())["format_version"] == 2
    CausCell.load(again)
