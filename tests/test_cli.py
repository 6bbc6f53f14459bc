"""Tests of the ``napari-causcell`` command line and the demo's accuracy function."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from napari_causcell.cli import main
from napari_causcell.data import log_normalize
from napari_causcell.datasets import PLANTED_AGE_EFFECTS, brain_aging, brain_aging_truth
from napari_causcell.metrics import change_correlation, counterfactual_accuracy

CONCEPTS = "age,domain,cell_type"
DAG = "age->cell_type,domain->cell_type"


def _finite_numbers(obj) -> list[float]:
    """Every number inside a nested JSON object."""
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in _finite_numbers(v)]
    if isinstance(obj, list):
        return [x for v in obj for x in _finite_numbers(v)]
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        return [float(obj)]
    return []


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


# -- fixtures: one small dataset and one tiny trained model for the module ------------------
@pytest.fixture(scope="module")
def cli_sdata():
    return brain_aging(n_cells=900, seed=1)


@pytest.fixture(scope="module")
def files(cli_sdata, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    cli_sdata.tables["table"].write_h5ad(root / "data.h5ad")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cli_sdata.write(root / "data.zarr")
    return root


@pytest.fixture(scope="module")
def model_dir(files):
    out = files / "model"
    rc = main(["train", str(files / "data.h5ad"), "--concepts", CONCEPTS, "--dag", DAG,
               "--out", str(out), "--epochs", "2", "--seed", "0", "--quiet"])
    assert rc == 0
    return out


# -- train / info / counterfactual ----------------------------------------------------------
def test_train_writes_model(model_dir):
    assert (model_dir / "model.pt").is_file()
    meta = json.loads((model_dir / "causcell.json").read_text())
    assert meta["concepts"]["names"] == ["age", "domain", "cell_type"]
    assert meta["dag"] == [["age", "cell_type"], ["domain", "cell_type"]]
    assert len(meta["genes"]) == 200
    assert len(meta["history"]) == 2 and meta["is_trained"]


def test_info_prints_concepts(capsys, model_dir):
    rc, out, err = _run(capsys, "info", model_dir)
    assert rc == 0 and err == ""
    assert "genes: 200" in out
    assert "age (3): 4wk, 24wk, 90wk" in out
    assert "cell_type (10): ExN_L23" in out
    assert "DAG: age->cell_type, domain->cell_type" in out
    assert "epochs: 2" in out and "stop reason: max_epochs" in out
    assert "held-out concept accuracy" in out

    rc, out, _ = _run(capsys, "info", model_dir, "--json")
    info = json.loads(out)
    assert rc == 0 and info["n_genes"] == 200 and info["train_params"]["stop_reason"] == "max_epochs"
    assert set(info["history_last"]) >= {"val_acc_age", "val_acc_domain", "val_acc_cell_type"}


def test_counterfactual_h5ad_with_where(capsys, files, model_dir, cli_sdata):
    out = files / "cf_astro.h5ad"
    rc, stdout, err = _run(capsys, "counterfactual", model_dir, files / "data.h5ad",
                           "--do", "age=90wk", "--where", "cell_type=Astro",
                           "--where", "age=4wk,24wk", "--out", out, "--steps", "3")
    assert rc == 0, err
    obs = cli_sdata.tables["table"].obs
    want = obs.index[(obs["cell_type"] == "Astro") & obs["age"].isin(["4wk", "24wk"])]
    cf = ad.read_h5ad(out)
    assert cf.n_obs == len(want) > 0 and cf.n_vars == 200
    assert set(cf.obs["source_id"]) == set(want)
    assert (cf.obs["age"].astype(str) == "90wk").all()
    assert (cf.obs["factual_cell_type"].astype(str) == "Astro").all()
    for layer in ("factual", "reconstructed", "delta"):
        assert np.isfinite(cf.layers[layer]).all()
    assert cf.uns["causcell"]["do"] == {"age": "90wk"}
    assert f"for {len(want)} cells" in stdout and "Top 10 changed genes" in stdout
    assert not Path(str(out) + ".tmp").exists()

    # an existing output needs --overwrite and is left as it was
    before = out.stat().st_mtime_ns
    rc, _, err = _run(capsys, "counterfactual", model_dir, files / "data.h5ad",
                      "--do", "age=24wk", "--out", out, "--steps", "3")
    assert rc == 2 and "--overwrite" in err and out.stat().st_mtime_ns == before


def test_counterfactual_reports_switches_and_holds(capsys, files, model_dir):
    """Label changes are printed with every counterfactual; --hold keeps them (issue 28
    item 1, issue 26 item 1)."""
    from napari_causcell import tl

    out = files / "cf_switch.h5ad"
    rc, stdout, err = _run(capsys, "counterfactual", model_dir, files / "data.h5ad",
                           "--do", "age=90wk", "--where", "age=4wk", "--out", out)
    assert rc == 0, err
    cf = ad.read_h5ad(out)
    line = tl.switch_summary(cf)  # the tiny model switches 17 % of the young cells' types
    assert line.startswith("cell_type changed in ")
    from napari_causcell.tl._switches import confound_note

    # the fixture's two mice per age differ within sampling noise: no confound note
    assert confound_note(cf, ad.read_h5ad(files / "data.h5ad")) == ""
    assert f"Labels changed: {line} (--hold CONCEPT keeps them)\nTop " in stdout
    held = files / "cf_held.h5ad"
    rc, stdout, err = _run(capsys, "counterfactual", model_dir, files / "data.h5ad",
                           "--do", "age=90wk", "--where", "age=4wk", "--hold", "cell_type",
                           "--out", held)
    assert rc == 0, err
    assert "holding cell_type" in stdout and "Labels changed" not in stdout
    cf = ad.read_h5ad(held)
    assert cf.uns["causcell"]["hold"] == ["cell_type"]
    assert (cf.obs["cell_type"].astype(str) == cf.obs["factual_cell_type"].astype(str)).all()
    rc, _, err = _run(capsys, "counterfactual", model_dir, files / "data.h5ad",
                      "--do", "age=90wk", "--hold", "celltype", "--out", files / "x.h5ad")
    assert rc == 2 and "not a concept" in err and "Traceback" not in err


def test_counterfactual_unseen_mode(capsys, files, model_dir):
    """--unseen reaches the counterfactual (uns records it); a wrong mode is refused."""
    out = files / "cf_blend.h5ad"
    rc, _, err = _run(capsys, "counterfactual", model_dir, files / "data.h5ad", "--do",
                      "age=90wk", "--where", "age=4wk", "--unseen", "blend", "--out", out)
    assert rc == 0, err
    assert ad.read_h5ad(out).uns["causcell"]["unseen"] == "blend"
    rc, _, err = _run(capsys, "counterfactual", model_dir, files / "data.h5ad", "--do",
                      "age=90wk", "--unseen", "pool", "--out", files / "y.h5ad")
    assert rc == 2 and "invalid choice: 'pool'" in err


def test_counterfactual_prints_intervals(capsys, files, model_dir, monkeypatch):
    """#26 item 3: the top genes come with their 90 % intervals (tl.change_intervals over the
    intervened cells, from the counterfactual just written), marked where they include 0;
    --no-intervals leaves them out; a failure leaves the result and says why."""
    from napari_causcell import CausCell
    from napari_causcell.tl import _intervals

    out = files / "cf_iv.h5ad"
    args = ("counterfactual", model_dir, files / "data.h5ad", "--do", "age=90wk", "--where",
            "cell_type=Astro", "--out", out, "--steps", "3", "--top", "5", "--overwrite")
    rc, stdout, err = _run(capsys, *args)
    assert rc == 0, err
    assert "Top 5 changed genes (mean counterfactual - reconstructed, log1p; 90 % interval)" \
        in stdout
    cf = ad.read_h5ad(out)
    data = ad.read_h5ad(files / "data.h5ad")
    want = _intervals.change_intervals(CausCell.load(model_dir), data, {"age": "90wk"},
                                       cells={"cell_type": ["Astro"]}, groupby=None,
                                       counterfactual=cf, sampler="mean", steps=3)
    lines = [ln for ln in stdout.splitlines() if ln.startswith("  ") and "[" in ln]
    assert len(lines) == 5
    for line in lines:
        gene, change, lo, hi = line.translate(str.maketrans("[],", "   ")).split()[:4]
        row = want.set_index("gene").loc[gene]
        assert float(lo) == pytest.approx(row["lower"], abs=0.006)
        assert float(hi) == pytest.approx(row["upper"], abs=0.006)
        assert line.endswith("includes 0") == (row["lower"] <= 0 <= row["upper"])
    rc, stdout, _ = _run(capsys, *args, "--no-intervals")
    assert rc == 0 and "[" not in stdout and "interval" not in stdout

    def fail(*a, **k):
        raise RuntimeError("no validation cells")

    monkeypatch.setattr(_intervals, "change_intervals", fail)
    rc, stdout, _ = _run(capsys, *args)
    assert rc == 0 and "No intervals: RuntimeError: no validation cells" in stdout
    assert ad.read_h5ad(out).n_obs == cf.n_obs


def test_counterfactual_spatialdata(capsys, files, model_dir):
    import spatialdata

    src = files / "data.zarr"
    out = files / "cf.zarr"
    rc, _, err = _run(capsys, "counterfactual", model_dir, src, "--do", "domain=WM",
                      "--where", "cell_type=Oligo", "--out", out, "--steps", "3",
                      "--key", "cf_wm")
    assert rc == 0, err
    new = spatialdata.read_zarr(out)
    n_oligo = int((new.tables["table"].obs["cell_type"] == "Oligo").sum())
    assert new.tables["cf_wm"].n_obs == n_oligo
    assert (new.tables["cf_wm"].obs["domain"].astype(str) == "WM").all()
    assert set(spatialdata.read_zarr(src).tables) == {"table"}  # input untouched

    # OUT = DATA adds the table in place; a second time needs --overwrite
    args = ["counterfactual", model_dir, src, "--do", "age=90wk", "--where", "age=4wk",
            "--out", src, "--steps", "3"]
    assert _run(capsys, *args)[0] == 0
    assert set(spatialdata.read_zarr(src).tables) == {"table", "causcell_age_90wk"}
    rc, _, err = _run(capsys, *args)
    assert rc == 2 and "already holds table 'causcell_age_90wk'" in err
    assert _run(capsys, *args, "--overwrite")[0] == 0


# -- bad input: exit code 2, one clear line, nothing written ---------------------------------
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--concepts", "age,batch", "--dag", ""], "'batch' is not in obs"),
        (["--concepts", CONCEPTS, "--dag", "age->cell_type,cell_type->age"], "has a cycle"),
        (["--concepts", CONCEPTS, "--dag", "a->b,b->a"], "unknown concept 'a'"),
        (["--concepts", CONCEPTS, "--dag", "age cell_type"], "parent->child"),
        (["--concepts", CONCEPTS, "--epochs", "0"], "--epochs must be >= 1"),
    ],
)
def test_train_bad_input(capsys, files, tmp_path, extra, message):
    out = tmp_path / "model"
    rc, _, err = _run(capsys, "train", files / "data.h5ad", "--out", out, *extra)
    assert rc == 2
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_train_refuses_nonempty_out(capsys, files, tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    rc, _, err = _run(capsys, "train", files / "data.h5ad", "--concepts", CONCEPTS,
                      "--out", tmp_path)
    assert rc == 2 and "--overwrite" in err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_train_missing_or_unreadable_data(capsys, tmp_path):
    rc, _, err = _run(capsys, "train", tmp_path / "nope.h5ad", "--concepts", CONCEPTS,
                      "--out", tmp_path / "m")
    assert rc == 2 and "does not exist" in err
    bad = tmp_path / "bad.h5ad"
    bad.write_text("not hdf5")
    rc, _, err = _run(capsys, "train", bad, "--concepts", CONCEPTS, "--out", tmp_path / "m")
    assert rc == 2 and "cannot read" in err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--do", "age=200wk"], "'200wk' is not a label of concept 'age'"),
        (["--do", "sex=F"], "Unknown concept 'sex'"),
        (["--do", "age"], "--do expects COLUMN=LABEL"),
        (["--do", "age=90wk", "--where", "cell_type=Neuron"], "no cell has cell_type 'Neuron'"),
        (["--do", "age=90wk", "--where", "batch=1"], "'batch' is not in obs"),
        (["--do", "age=90wk", "--where", "age=4wk", "--where", "age=24wk"], "twice"),
        (["--do", "age=90wk", "--steps", "0"], "--steps must be >= 1"),
    ],
)
def test_counterfactual_bad_input(capsys, files, model_dir, tmp_path, extra, message):
    out = tmp_path / "cf.h5ad"
    rc, _, err = _run(capsys, "counterfactual", model_dir, files / "data.h5ad", "--out", out,
                      "--steps", "3", *extra)
    assert rc == 2
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_counterfactual_bad_output_kind(capsys, files, model_dir, tmp_path):
    rc, _, err = _run(capsys, "counterfactual", model_dir, files / "data.h5ad", "--do",
                      "age=90wk", "--out", tmp_path / "cf.zarr")
    assert rc == 2 and "needs SpatialData input" in err
    rc, _, err = _run(capsys, "counterfactual", model_dir, files / "data.h5ad", "--do",
                      "age=90wk", "--out", tmp_path / "cf.csv")
    assert rc == 2 and ".h5ad or .zarr" in err
    assert list(tmp_path.iterdir()) == []


def test_missing_and_corrupt_model(capsys, files, tmp_path):
    out = tmp_path / "cf.h5ad"
    rc, _, err = _run(capsys, "counterfactual", tmp_path / "no_model", files / "data.h5ad",
                      "--do", "age=90wk", "--out", out)
    assert rc == 2 and "is not a model directory" in err

    bad = tmp_path / "bad_model"
    bad.mkdir()
    (bad / "causcell.json").write_text("{garbage")
    rc, _, err = _run(capsys, "info", bad)
    assert rc == 2 and "model.pt is missing" in err
    (bad / "model.pt").write_bytes(b"\x00garbage")
    for argv in (["info", bad],
                 ["counterfactual", bad, files / "data.h5ad", "--do", "age=90wk", "--out", out]):
        rc, _, err = _run(capsys, *argv)
        assert rc == 2 and "is corrupt or truncated" in err and "Traceback" not in err
    assert not out.exists()


def test_usage_errors(capsys, model_dir):
    assert main(["--help"]) == 0
    capsys.readouterr()
    rc, _, err = _run(capsys, "train", "x.h5ad")  # --concepts and --out missing
    assert rc == 2 and "required" in err
    rc, _, err = _run(capsys, "frobnicate")
    assert rc == 2 and "invalid choice" in err
    rc, _, err = _run(capsys, "info", model_dir, "--threads", "-1")
    assert rc == 2 and "--threads must be >= 0" in err


def test_console_entry_point():
    res = subprocess.run([sys.executable, "-m", "napari_causcell", "--version"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.startswith("napari-causcell ")


# -- demo --------------------------------------------------------------------------------------
def test_demo_tiny(capsys, tmp_path):
    import spatialdata

    out = tmp_path / "demo"
    rc, stdout, err = _run(capsys, "demo", "--out", out, "--n-cells", "900", "--epochs", "2",
                           "--steps", "5", "--real-epochs", "3", "--real-max-time", "0",
                           "--quiet")
    assert rc == 0, err
    for name in ("loss.png", "metrics.json", "model/model.pt", "model/causcell.json"):
        assert (out / name).is_file(), name
    overlays = sorted(out.glob("overlay_*.png"))
    assert len(overlays) == 3
    planted = set(PLANTED_AGE_EFFECTS["gene"])
    assert {p.stem.removeprefix("overlay_") for p in overlays} <= planted

    m = json.loads((out / "metrics.json").read_text())
    assert set(m) >= {"settings", "training", "counterfactual", "accuracy", "files",
                      "total_time_s"}
    assert m["training"]["epochs"] == 2
    assert set(m["training"]["val_acc"]) == {"age", "domain", "cell_type"}
    acc = m["accuracy"]
    assert acc["n_cells"] == m["counterfactual"]["n_cells"] == 300  # the 4wk third
    assert set(acc["pearson"]) == set(acc["mse"]) == {"causcell", "mean_shift", "no_change"}
    assert acc["pearson"]["no_change"] == 0.0 and acc["mse"]["no_change"] > 0
    assert -1 <= acc["pearson"]["causcell"] <= 1
    assert 0 <= acc["planted_sign_agreement"] <= acc["planted_n"] == len(acc["planted"]) > 0
    assert all(math.isfinite(x) for x in _finite_numbers(m))
    # the 90 % intervals of tl.change_intervals against the truth, one line in the summary
    iv = acc["intervals"]
    assert iv["pairs"] == len(acc["cell_types"]) * acc["n_genes"] and iv["level"] == 0.9
    assert 0 <= iv["coverage"] <= 1 and iv["mean_width"] > 0 and iv["mean_abs_true"] > 0
    assert (f"90 % intervals (tl.change_intervals) cover {iv['coverage']:.0%} of the true "
            f"changes; mean width {iv['mean_width']:.3f}") in stdout

    sd = spatialdata.read_zarr(out / "brain_aging.zarr")
    assert sd.tables["table"].n_obs == 900
    cf = sd.tables["causcell_age_90wk"]
    assert cf.n_obs == 300 and (cf.obs["age"].astype(str) == "90wk").all()
    assert "delta" in cf.layers

    assert "Pearson r" in stdout and "Planted age effects: sign agrees for" in stdout
    assert str(out) in stdout

    # then the real MERFISH data: a marker table of predicted vs observed change
    real = m["real_data"]
    assert real["training"]["epochs"] == 3
    assert real["counterfactual"]["do"] == {"age": "old"}
    assert real["counterfactual"]["n_cells"] == 2411  # the young mouse
    rows = {(r["gene"], r["cell_type"]): r for r in real["markers"]}
    assert {("C4b", "Oligo"), ("Gfap", "Astro"), ("B2m", "Microglia"),
            ("H2-K1", "Microglia")} <= set(rows)
    c4b = rows["C4b", "Oligo"]
    assert c4b["n_source"] == 429 and c4b["n_target"] == 664
    assert c4b["observed"] == pytest.approx(3.01, abs=0.01)  # old - young, log-normalised
    assert c4b["predicted"] > 0.3 and c4b["agrees_observed"] and c4b["agrees_expected"]
    # within regions, at the young oligodendrocytes' region mix (striatum: 2 old ones, left out)
    assert 2.0 < c4b["observed_region_matched"] < 3.5
    assert 0.6 < c4b["region_matched_share"] < 0.9
    assert rows["Gfap", "Astro"]["observed"] == pytest.approx(1.69, abs=0.01)
    assert real["n"] == len(real["markers"]) >= 10 and not real["skipped"]
    assert any(r["gene"] == "C4b" and r["domain"] == "CC/ACO" for r in real["by_domain"])
    assert "mouse and age are confounded" in real["caveat"]
    merfish_pngs = sorted(p.name for p in out.glob("merfish_*.png"))
    assert merfish_pngs == ["merfish_loss.png", "merfish_overlay_B2m.png",
                            "merfish_overlay_C4b.png", "merfish_overlay_Gfap.png"]
    assert "Real data: MERFISH mouse brain aging" in stdout
    assert "mouse and age are confounded" in stdout
    assert "C4b     Oligo" in stdout and stdout.rstrip().splitlines()[-1].startswith("Total time")


def test_demo_simulated_only(capsys, tmp_path):
    out = tmp_path / "demo"
    rc, stdout, err = _run(capsys, "demo", "--out", out, "--n-cells", "300", "--epochs", "1",
                           "--steps", "2", "--no-real", "--quiet")
    assert rc == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert "real_data" not in m and not list(out.glob("merfish_*"))
    assert "Real data" not in stdout
    rc, _, err = _run(capsys, "demo", "--out", out, "--real-epochs", "0")
    assert rc == 2 and "--real-epochs must be >= 1" in err


# -- counterfactual_accuracy on hand-made cases ------------------------------------------------
@pytest.fixture(scope="module")
def small():
    sd = brain_aging(n_cells=600, n_genes=60, n_mice_per_age=1, seed=3)
    table = sd.tables["table"]
    mask = (table.obs["age"] == "4wk").to_numpy()
    do = {"age": "90wk"}
    genes = list(table.var_names)
    factual = log_normalize(table[mask].X).toarray()
    true = log_normalize(brain_aging_truth(sd, do, cells=mask).X).toarray()
    return sd, mask, do, genes, factual, true


def _fake_cf(table, mask, genes, factual, delta, order=None):
    obs = table.obs[mask].copy()
    obs["source_id"] = obs.index.astype(str)
    cf = ad.AnnData(factual + delta, obs=obs, var=pd.DataFrame(index=genes))
    cf.layers["factual"] = factual
    cf.layers["delta"] = delta
    return cf if order is None else cf[order].copy()


def test_accuracy_perfect_prediction(small):
    sd, mask, do, genes, factual, true = small
    table = sd.tables["table"]
    # rows shuffled: matching goes through obs['source_id']
    order = np.random.default_rng(0).permutation(int(mask.sum()))
    cf = _fake_cf(table, mask, genes, factual, true - factual, order)
    acc = counterfactual_accuracy(sd, cf, do, mask, return_matrices=True)
    assert acc["pearson"]["causcell"] == pytest.approx(1.0, abs=1e-9)
    assert acc["mse"]["causcell"] == pytest.approx(0.0, abs=1e-12)
    assert acc["mse"]["no_change"] > 0 and acc["pearson"]["no_change"] == 0.0
    assert np.isfinite(acc["pearson"]["mean_shift"]) and acc["mse"]["mean_shift"] > 0
    assert acc["n_cells"] == int(mask.sum()) and acc["n_genes"] == 60
    assert acc["planted_n"] > 0 and acc["planted_sign_agreement"] == acc["planted_n"]
    for rec in acc["planted"]:
        assert rec["predicted"] == pytest.approx(rec["true"], abs=1e-6)
    mats = acc["matrices"]
    np.testing.assert_allclose(mats["predicted"].to_numpy(), mats["true"].to_numpy(), atol=1e-6)
    assert list(mats["true"].index) == acc["cell_types"]
    # planted up-regulations show up in the truth (e.g. C4b in oligodendrocytes)
    if "Oligo" in acc["cell_types"]:
        assert mats["true"].loc["Oligo", "C4b"] > 0.5

    # the default source mask comes from obs['source_id']
    assert counterfactual_accuracy(sd, cf, do)["pearson"]["causcell"] == pytest.approx(1.0)


def test_accuracy_no_change_and_mismatch(small):
    sd, mask, do, genes, factual, true = small
    table = sd.tables["table"]
    cf = _fake_cf(table, mask, genes, factual, np.zeros_like(factual))
    acc = counterfactual_accuracy(sd, cf, do, mask)
    assert acc["pearson"]["causcell"] == 0.0
    assert acc["mse"]["causcell"] == pytest.approx(acc["mse"]["no_change"])
    from napari_causcell.data import DataError

    other = (table.obs["age"] == "24wk").to_numpy()
    with pytest.raises(DataError, match="differ from source_mask"):
        counterfactual_accuracy(sd, cf, do, other)


def test_change_correlation_of_flat_arrays():
    assert change_correlation(np.zeros(5), np.arange(5)) == 0.0
    assert change_correlation(np.arange(5), 2 * np.arange(5) + 1) == pytest.approx(1.0)
    assert change_correlation(np.arange(5), -np.arange(5)) == pytest.approx(-1.0)


def test_marker_table_by_hand():
    from napari_causcell.metrics import marker_table
    from napari_causcell.datasets import merfish_brain_aging

    table = merfish_brain_aging(as_anndata=True)
    young = (table.obs["age"] == "young").to_numpy()
    genes = list(table.var_names)
    obs = table.obs[young].copy()
    obs["source_id"] = obs.index.astype(str)
    delta = np.zeros((int(young.sum()), len(genes)), np.float32)
    delta[:, genes.index("C4b")] = 1.0
    cf = ad.AnnData(delta.copy(), obs=obs, var=pd.DataFrame(index=genes))
    cf.layers["delta"] = delta
    cf.uns["causcell"] = {"do": {"age": "old"}}
    markers = pd.DataFrame({"gene": ["C4b", "Gfap", "Nope", "C4b"],
                            "cell_type": ["Oligo", "Astro", "Astro", "Macrophage"],
                            "direction": ["up", "down", "up", "up"]})
    res = marker_table(table, cf, markers)
    rows = {(r["gene"], r["cell_type"]): r for r in res["markers"]}
    assert set(rows) == {("C4b", "Oligo"), ("Gfap", "Astro")}
    assert rows["C4b", "Oligo"]["predicted"] == pytest.approx(1.0)
    assert rows["C4b", "Oligo"]["observed"] == pytest.approx(3.01, abs=0.01)
    assert rows["C4b", "Oligo"]["agrees_observed"] and rows["C4b", "Oligo"]["agrees_expected"]
    gfap = rows["Gfap", "Astro"]
    assert gfap["predicted"] == 0.0 and not gfap["agrees_expected"]
    assert {s["gene"] for s in res["skipped"]} == {"Nope", "C4b"}
    by = [r for r in res["by_domain"] if r["gene"] == "C4b" and r["domain"] == "STR_CP/ACB"]
    assert by and by[0]["observed"] is None  # 2 old oligodendrocytes in the striatum
    c4b = rows["C4b", "Oligo"]
    covered = [r for r in res["by_domain"] if r["gene"] == "C4b" and r["cell_type"] == "Oligo"
               and r["observed"] is not None]
    assert c4b["observed_region_matched"] == pytest.approx(
        np.average([r["observed"] for r in covered], weights=[r["n_source"] for r in covered]))
    assert c4b["region_matched_share"] == pytest.approx(
        sum(r["n_source"] for r in covered) / c4b["n_source"])
    cf.uns["causcell"] = {"do": {"domain": "VEN"}}
    with pytest.raises(Exception, match="does not set 'age'"):
        marker_table(table, cf, markers)
