"""benchmarks/compare.py and report.py: splits, foils, scoring and the one-command run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import _background

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import compare, report  # noqa: E402


@pytest.fixture(scope="module")
def ds():
    return compare.load_dataset("brain_aging", n_cells=1500)


def test_id_split_is_a_partition(ds):
    sp = compare.split(ds, "id", seed=0)
    assert not set(sp["train"]) & set(sp["test"])
    assert len(sp["train"]) + len(sp["test"]) == ds.adata.n_obs
    assert set(sp["cf"]) <= set(sp["test"])
    assert (ds.adata.obs["age"].iloc[sp["cf"]] == "4wk").all()
    assert len(sp["recon_pos"]) == len(sp["test"])
    again = compare.split(ds, "id", seed=0)
    np.testing.assert_array_equal(sp["test"], again["test"])  # seeded


def test_ood_split_holds_out_combinations(ds):
    sp = compare.split(ds, "ood", seed=1)
    obs = ds.adata.obs.astype(str)
    assert len(sp["held_out"]) == 2
    for combo in sp["held_out"]:
        assert combo["age"] == "90wk"
        hit = (obs["age"] == "90wk") & (obs["cell_type"] == combo["cell_type"])
        assert not hit.iloc[sp["train"]].any()  # never seen in training
        assert hit.iloc[sp["test"]].sum() > 0  # and scored as held out
    held = obs.iloc[sp["test"][sp["recon_pos"]]]
    assert (held["age"] == "90wk").all()
    types = {c["cell_type"] for c in sp["held_out"]}
    cf = obs.iloc[sp["cf"]]
    assert (cf["age"] == "4wk").all() and set(cf["cell_type"]) <= types


def test_foils_and_truth(ds):
    sp = compare.split(ds, "id", seed=0)
    x = compare.lognorm(ds.adata)
    truth = compare.truth_for(ds, sp, x)
    assert truth["matrix"].shape == (len(truth["types"]), ds.adata.n_vars)
    assert truth["n_responsive"] > 0
    foils = compare.run_foils(ds, sp, x)
    assert set(foils) == {"no change", "mean shift"}
    s_none = compare.score(ds, sp, foils["no change"], x, truth, 0)
    s_shift = compare.score(ds, sp, foils["mean shift"], x, truth, 0)
    assert s_none["cf_r"] == 0.0 and s_none["cf_auroc"] == 0.5
    assert s_shift["cf_r"] > 0.3  # the observed shift carries the planted age effects
    # a perfect prediction scores r = 1 and AUROC = 1
    true_delta = truth["cells"] - x[sp["cf"]]
    perfect = compare.Output(cf=truth["cells"], cf_delta=true_delta)
    s = compare.score(ds, sp, perfect, x, truth, 0)
    assert s["cf_r"] == pytest.approx(1.0) and s["cf_auroc"] == pytest.approx(1.0)
    assert s["cf_energy"] == pytest.approx(0.0, abs=1e-6)


def test_second_simulated_tissue():
    other = compare.load_dataset("brain_aging@1", n_cells=1500)
    base = compare.load_dataset("brain_aging", n_cells=1500)
    assert other.name == "brain_aging@1" and other.adata.n_obs == base.adata.n_obs
    assert not np.allclose(compare.lognorm(other.adata)[:50], compare.lognorm(base.adata)[:50])
    with pytest.raises(SystemExit, match="integer"):
        compare.load_dataset("brain_aging@x")


def test_ood_foil_variants(ds):
    from benchmarks import ood_foils

    sp = compare.split(ds, "ood", seed=0)
    x = compare.lognorm(ds.adata)
    out = ood_foils.variants(ds, sp, x)
    assert all(v.shape == (len(sp["cf"]), x.shape[1]) for v in out.values())
    # the main table's pooled shift leaves the held-out types out of both sides (issue 26:
    # the honest OOD foil), as the "without" variant does
    pooled, without = out["pooled shift"][0], out["pooled shift without the held-out types"][0]
    np.testing.assert_allclose(pooled, without, rtol=1e-5)
    obs = ds.adata.obs
    tr = np.zeros(len(obs), bool)
    tr[sp["train"]] = True
    rest = tr & ~obs["cell_type"].isin(obs["cell_type"].iloc[sp["cf"]].unique()).to_numpy()
    old, young = (rest & (obs["age"] == a).to_numpy() for a in ("90wk", "4wk"))
    np.testing.assert_allclose(without, x[old].mean(0) - x[young].mean(0), rtol=1e-5)


def test_score_reconstruction_and_probes(ds):
    sp = compare.split(ds, "id", seed=0)
    x = compare.lognorm(ds.adata)
    rng = np.random.default_rng(0)
    codes = {c: pd.get_dummies(ds.adata.obs[c].iloc[sp["test"]]).to_numpy(float)
             for c in ds.concepts}
    emb = {c: v + rng.normal(scale=0.1, size=v.shape) for c, v in codes.items()}
    emb["latent"] = rng.normal(size=(len(sp["test"]), 4))
    out = compare.Output(embeddings=emb, recon=x[sp["test"]])
    s = compare.score(ds, sp, out, x, None, 0)
    assert s["own_accuracy"] > 0.99 and s["per_cell_r"] == pytest.approx(1.0)
    assert s["mse"] == pytest.approx(0.0) and s["marker_overlap"] == pytest.approx(1.0)
    assert abs(s["latent_leakage"]) < 0.1
    assert s["cluster_ari"] == pytest.approx(1.0)


def test_planted_and_switching_scores_on_a_perfect_prediction(ds):
    sp = compare.split(ds, "id", seed=0)
    x = compare.lognorm(ds.adata)
    truth = compare.truth_for(ds, sp, x)
    assert len(truth["planted"]) >= 3 and 0.0 < truth["switched"] < 0.3
    perfect = compare.Output(cf=truth["cells"], cf_delta=truth["cells"] - x[sp["cf"]],
                             cf_labels=truth["cf_type"])
    s = compare.score_cf(truth, perfect, 0)
    assert s["planted_slope"] == pytest.approx(1.0)
    assert s["planted_signs"] == len(truth["planted"])
    assert s["cf_switched"] == pytest.approx(truth["switched"])
    assert s["cf_composition_tv"] == pytest.approx(0.0)


def _real(n=600, seed=0):
    """A small 'real' dataset: age x type, with a type-specific age effect on gene 0."""
    import anndata as ad

    rng = np.random.default_rng(seed)
    obs = pd.DataFrame({"age": rng.choice(["young", "old"], n),
                        "region": rng.choice(["A", "B"], n),
                        "type": rng.choice(["T1", "T2", "T3"], n)},
                       index=[f"c{i}" for i in range(n)])
    mu = np.full((n, 20), 5.0)
    mu[:, 0] *= np.where((obs["age"] == "old") & (obs["type"] == "T1"), 4.0, 1.0)
    x = rng.poisson(mu).astype(np.float32)
    a = ad.AnnData(x, obs=obs.astype("category"))
    return compare.Dataset("toy", a, ["age", "region", "type"], [("age", "type")],
                           cf_do={"age": "old"}, cf_source={"age": "young"}, type_key="type",
                           ood_pair=("age", "type"), ood_value="old", held_types=("T1", "T2"),
                           real_cf=True, markers=(("T1", "0"),), settings=("ood",))


def test_real_data_ood_tasks_are_scored_against_held_out_cells():
    ds = _real()
    sp = compare.split(ds, "ood", seed=0)  # seed 0 holds out old T1
    assert sp["held_out"] == [{"age": "old", "type": "T1"}]
    obs = ds.adata.obs
    train = obs.iloc[sp["train"]]
    assert not ((train["age"] == "old") & (train["type"] == "T1")).any()
    (g,) = sp["cf_groups"]
    assert g["do"] == {"age": "old"}
    assert (obs.iloc[g["source"]]["age"] == "young").all()
    assert (obs.iloc[g["target"]][["age", "type"]].astype(str).to_numpy() == ["old", "T1"]).all()
    x = compare.lognorm(ds.adata)
    truth = compare.truth_for(ds, sp, x)
    assert truth["matrix"].shape == (1, 20) and truth["matrix"][0, 0] > 1.0
    assert truth["observed_markers"]["T1:0"] == pytest.approx(truth["matrix"][0, 0])
    foils = compare.run_foils(ds, sp, x)
    exact = compare.Output(cf_delta=np.tile(truth["matrix"][0], (len(g["source"]), 1)))
    s = compare.score_cf(truth, exact, 0)
    assert s["cf_r"] == pytest.approx(1.0) and s["marker:T1:0"] == pytest.approx(
        truth["matrix"][0, 0])
    pooled = compare.score_cf(truth, foils["mean shift"], 0)
    assert pooled["cf_r"] < 0.99  # the pooled shift dilutes the T1-only effect
    assert "pooled" in foils["mean shift"].notes[0]
    assert compare.split(ds, "ood", seed=1)["held_out"] == [{"age": "old", "type": "T2"}]


def test_probes_skip_labels_with_a_single_cell(ds):
    sp = compare.split(ds, "id", seed=0)
    x = compare.lognorm(ds.adata)
    rng = np.random.default_rng(0)
    emb = {c: rng.normal(size=(len(sp["test"]), 3)) for c in ds.concepts}
    one = ds.adata.copy()
    ct = one.obs["cell_type"].astype(str).to_numpy()
    ct[sp["test"][0]] = "Rare"  # a label with one cell in the test set
    one.obs["cell_type"] = pd.Categorical(ct)
    d1 = compare.Dataset(ds.name, one, ds.concepts, ds.dag)
    s = compare.score(d1, sp, compare.Output(embeddings=emb), x, None, 0)
    assert np.isfinite(s["own_accuracy"])


def test_summarise_and_report(tmp_path):
    runs = [{"dataset": "d", "setting": "id", "seed": k, "samplers": [],
             "scores": {"CausCell": {"per_cell_r": 0.5 + 0.1 * k, "notes": ["x"]},
                        "scvi": {"per_cell_r": 0.4}}} for k in range(2)]
    summ = compare.summarise(runs)
    row = summ[(summ.method == "CausCell")].iloc[0]
    assert row["mean"] == pytest.approx(0.55) and row["sd"] == pytest.approx(0.0707, abs=1e-3)
    assert row["n"] == 2
    md = report.tables(summ)
    assert "| CausCell | 0.550 ± 0.071 |" in md and "| scVI | 0.400 ± 0.000 |" in md
    doc = tmp_path / "b.md"
    doc.write_text("# Benchmarks\n\nintro\n")
    result = {"machine": compare.machine(1), "args": {"seeds": 2, "budget": 10.0},
              "date": "2026-01-01", "command": "python -m benchmarks run", "file": "x.json",
              "elapsed_s": 60.0, "runs": runs, "peers": {"scvi": "run"}}
    report.write_docs(result, summ, doc, tmp_path / "img")
    report.write_docs(result, summ, doc, tmp_path / "img")  # replaces, not appends
    text = doc.read_text()
    assert text.count(report.START) == 1 and "intro" in text
    assert (tmp_path / "img" / "benchmark_compare.png").stat().st_size > 1000


def test_time_to_quality():
    h = [{"time": t, "val_recon": v, "val_concept": c}
         for t, v, c in [(1, 10.0, 0.0), (2, 5.0, 0.0), (3, 1.4, 9.0), (4, 1.0, 0.0)]]
    # on the reconstruction loss that picks the weights; the concept loss is not counted
    assert compare.time_to_quality(h) == 3  # 1.4 <= 10 - 0.95 * 9 = 1.45
    assert np.isnan(compare.time_to_quality([{"time": 1}]))


def test_bad_inputs(tmp_path):
    with pytest.raises(SystemExit, match="unknown dataset"):
        compare.load_dataset("nope")
    with pytest.raises(SystemExit, match="needs --concepts"):
        compare.load_dataset("h5ad", h5ad="x.h5ad")
    from napari_causcell.datasets import brain_aging

    path = tmp_path / "t.h5ad"
    brain_aging(300, 60, seed=0).tables["table"].write_h5ad(path)
    with pytest.raises(SystemExit, match="no obs column"):
        compare.load_dataset("h5ad", h5ad=str(path), concepts=["age", "tissue"])


#: the one command, shrunk (no peers, 900 cells, 3 s per method, 70 sampler cells, no docs)
QUICK = ["run", "--quick", "--no-peers", "--cells", "900", "--budget", "3", "--sampler-cells",
         "70", "--no-docs"]


def _quick_run(out) -> _background.Job:
    return _background.Job("benchmarks_quick_run", [sys.executable, "-m", "benchmarks", *QUICK,
                                                    "--out", str(out)], out, cwd=ROOT)


def background_jobs(selected, mktemp):
    """The quick run goes to the background (tests/_background.py) once collected."""
    global _DOC_BEFORE
    if "test_quick_run_end_to_end" not in selected:
        return []
    _DOC_BEFORE = (ROOT / "docs" / "benchmarks.md").read_text()
    return [_quick_run(mktemp("bench_quick"))]


_DOC_BEFORE: str | None = None  # docs/benchmarks.md when the background run was queued


def test_quick_run_end_to_end(tmp_path):
    """The one command, shrunk: results JSON with every method and metric, no docs touched."""
    doc = ROOT / "docs" / "benchmarks.md"
    before = _DOC_BEFORE if _DOC_BEFORE is not None else doc.read_text()
    job = _background.result("benchmarks_quick_run", lambda: _quick_run(tmp_path))
    assert job.result.returncode == 0, job.result.stderr[-4000:]
    assert doc.read_text() == before
    (file,) = [p for p in job.folder.glob("*.json") if not p.name.endswith(".partial.json")]
    saved = json.loads(file.read_text())
    assert saved["file"] == file.name and saved["command"] == "python -m benchmarks run " + " ".join(QUICK[1:]
                                                                      + ["--out", str(job.folder)])
    scores = saved["runs"][0]["scores"]
    assert set(scores) == {"CausCell", "CausCell_IND", "no change", "mean shift"}
    for key in ("own_accuracy", "leakage", "per_cell_r", "cluster_ari", "cf_r", "cf_auroc",
                "cells_per_s"):
        assert np.isfinite(scores["CausCell"][key]), key
    samplers = saved["runs"][0]["samplers"]  # 70 cells > the 58 cf cells: some repeat
    assert [s["sampler"] for s in samplers] == ["MEAN-8", "DDIM-50", "DDPM-1000"]
    assert all(np.isfinite(s["cf_r"]) and s["cells"] == 70 for s in samplers)
    assert saved["peers"] == {}


def test_recon_foils_label_means(ds):
    from benchmarks import recon_foils

    sp = compare.split(ds, "id", seed=0)
    x = compare.lognorm(ds.adata)
    out = recon_foils.predictors(ds, sp, x)
    cells = sp["test"][sp["recon_pos"]]
    assert all(v.shape == (len(cells), x.shape[1]) for v in out.values())
    # the oracle is the mean of every cell (train and test) with the same labels
    obs = ds.adata.obs
    first = cells[0]
    same = (obs[ds.concepts] == obs[ds.concepts].iloc[first]).all(1).to_numpy()
    np.testing.assert_allclose(out["own combination's mean (oracle)"][0], x[same].mean(0),
                               rtol=1e-5)
    # the type mean uses training cells only
    tr = np.zeros(len(obs), bool)
    tr[sp["train"]] = True
    typ = (obs[ds.type_key] == obs[ds.type_key].iloc[first]).to_numpy()
    np.testing.assert_allclose(out["cell type's training mean"][0], x[tr & typ].mean(0),
                               rtol=1e-5)


def test_ablation_model_seeds_train_each_variant_per_weight_seed():
    from benchmarks import ablation

    logs = []
    variant = "kl 1 (default)"
    mk, tk, ck = ablation.VARIANTS[variant]
    saved = dict(tk)
    tk.update(max_epochs=1, max_time=None)
    try:
        rows = ablation.run([variant], ["brain_aging"], seeds=1, budget=5.0, cells=600,
                            log=logs.append, settings=["id"], model_seeds=2)
    finally:
        tk.clear()
        tk.update(saved)
    ours = [r for r in rows if r["method"] == variant]
    assert sorted(r["model_seed"] for r in ours) == [0, 100]
    assert ours[0]["cf_r"] != ours[1]["cf_r"]  # different weights, same split
    foils = [r for r in rows if r["method"] == "mean shift"]
    assert len(foils) == 1 and foils[0]["model_seed"] is None
