"""Scale: minibatches from CSR / backed h5ad without densifying, and DDP training on gloo."""

from __future__ import annotations

import os
import subprocess
import sys

import anndata as ad
import numpy as np
import pytest
from scipy import sparse

from napari_causcell import CausCell, DataError
from napari_causcell.train import _data as train_data
from napari_causcell.data import ExpressionSource, expression

CONCEPTS = ["age", "domain", "cell_type"]
DAG = [("age", "cell_type"), ("domain", "cell_type")]
TINY = dict(width=32, hidden=64, token_dim=8)


def counts_adata(n=600, g=120, seed=0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    x = sparse.random(n, g, density=0.15, format="csr", random_state=seed,
                      data_rvs=lambda k: rng.poisson(4, k) + 1).astype(np.float32)
    x = x.tolil()
    x[3] = 0  # a cell without counts stays zero
    a = ad.AnnData(x.tocsr())
    a.var_names = [f"g{i}" for i in range(g)]
    a.obs_names = [f"c{i}" for i in range(n)]
    return a


def test_rows_equal_whole_matrix_preprocessing(tmp_path):
    a = counts_adata()
    genes = list(a.var_names[::-2])  # a subset in another order: totals over these genes only
    full = expression(a, genes).toarray()
    idx = np.array([5, 3, 599, 0, 5, 42, 41, 40])  # unsorted, repeated, a zero cell
    for data in (a, ad.AnnData(a.X.toarray(), var=a.var), ad.AnnData(a.X.tocsc(), var=a.var)):
        got = ExpressionSource(data, genes).rows(idx)
        np.testing.assert_allclose(got, full[idx], rtol=1e-6, atol=1e-6)
    assert not ExpressionSource(a, genes).rows([3]).any()
    path = tmp_path / "x.h5ad"
    a.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    src = ExpressionSource(backed, genes)
    assert src.backed
    np.testing.assert_allclose(src.rows(idx), full[idx], rtol=1e-6, atol=1e-6)
    chunks = list(src.chunks(size=128))
    assert [len(c) for c, _ in chunks] == [128] * 4 + [88]
    np.testing.assert_allclose(np.concatenate([b for _, b in chunks]), full, rtol=1e-6, atol=1e-6)
    assert src.max() == pytest.approx(full.max(), rel=1e-6)
    # already log-normalised input is passed through as it is
    lognorm = ad.AnnData(sparse.csr_matrix(full), var=a[:, genes].var)
    np.testing.assert_array_equal(ExpressionSource(lognorm, genes, log_normalized=True).rows(idx),
                                  full[idx])


def test_rows_errors(tmp_path):
    a = counts_adata(50, 20)
    with pytest.raises(DataError, match="missing"):
        ExpressionSource(a, ["g1", "nope"])
    bad = a.copy()
    bad.X = bad.X.toarray()
    bad.X[2, 3] = -1
    with pytest.raises(DataError, match="negative"):
        ExpressionSource(bad, list(a.var_names)).rows([1, 2])
    bad.X[2, 3] = 0.5
    with pytest.raises(DataError, match="not integers"):
        ExpressionSource(bad, list(a.var_names)).max()
    with pytest.raises(IndexError):
        ExpressionSource(a, list(a.var_names)).rows([50])
    csc = ad.AnnData(a.X.tocsc(), var=a.var)
    csc.write_h5ad(tmp_path / "csc.h5ad")
    with pytest.raises(DataError, match="CSC"):
        ExpressionSource(ad.read_h5ad(tmp_path / "csc.h5ad", backed="r"), list(a.var_names))


@pytest.fixture(scope="module")
def table_file(tmp_path_factory):
    from napari_causcell.datasets import brain_aging

    table = brain_aging(n_cells=1200, n_genes=60, seed=0).tables["table"]
    table.X = sparse.csr_matrix(table.layers["counts"])
    del table.layers["counts"]
    table.uns.pop("spatialdata_attrs", None)
    path = tmp_path_factory.mktemp("scale") / "tissue.h5ad"
    table.write_h5ad(path)
    return path


def _history(model):
    return [{k: v for k, v in r.items() if k != "time"} for r in model.history]


def test_training_from_backed_h5ad_matches_in_memory(table_file, monkeypatch):
    kw = dict(dag=DAG, seed=0, **TINY)
    mem = CausCell(ad.read_h5ad(table_file), CONCEPTS, **kw)
    mem.train(max_epochs=2, early_stopping=False)  # small: dense cache
    backed_data = ad.read_h5ad(table_file, backed="r")
    backed = CausCell(backed_data, CONCEPTS, **kw)
    backed.train(max_epochs=2, early_stopping=False)  # on disk: rows read per batch
    monkeypatch.setattr(train_data, "DENSE_CACHE_VALUES", 0)
    streamed = CausCell(ad.read_h5ad(table_file), CONCEPTS, **kw)
    streamed.train(max_epochs=2, early_stopping=False)  # in memory, densified per batch
    assert backed_data.isbacked
    for other in (backed, streamed):
        for a, b in zip(_history(mem), _history(other)):
            assert a.keys() == b.keys()
            for k in a:
                assert b[k] == pytest.approx(a[k], rel=1e-4, abs=1e-5), k
        assert float(other.module.clip_max) == pytest.approx(float(mem.module.clip_max))
        for key, bank in mem.donors.banks.items():
            np.testing.assert_allclose(other.donors.banks[key]["z"], bank["z"], atol=1e-4)
    # predictions and embeddings stream from the backed file too, equal to in-memory ones
    pred = backed.predict_concepts(backed_data)
    again = backed.predict_concepts(ad.read_h5ad(table_file))
    assert len(pred) == backed_data.n_obs and backed_data.isbacked
    np.testing.assert_allclose(pred["age_prob"], again["age_prob"], rtol=1e-5)
    emb = backed.concept_embeddings(backed_data, write=False)
    assert emb["u"].shape == (backed_data.n_obs, TINY["token_dim"])
    cf = backed.counterfactual(backed_data, do={"age": "90wk"}, steps=2, seed=0)
    mem_cf = backed.counterfactual(ad.read_h5ad(table_file), do={"age": "90wk"}, steps=2, seed=0)
    np.testing.assert_allclose(cf.layers["factual"], mem_cf.layers["factual"])
    np.testing.assert_allclose(cf.X, mem_cf.X, atol=1e-4)


def test_backed_many_genes_needs_gene_selection(table_file):
    with pytest.raises(DataError, match="on disk"):
        CausCell(ad.read_h5ad(table_file, backed="r"), CONCEPTS, max_genes=10)


def test_two_process_ddp_matches_single_process(table_file, tmp_path):
    """``train --devices 2`` (torchrun, gloo, 2 CPU processes) vs one process, same seed."""
    from napari_causcell.cli import main

    args = ["train", str(table_file), "--concepts", ",".join(CONCEPTS), "--dag",
            "age->cell_type,domain->cell_type", "--epochs", "6", "--quiet", "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "napari_causcell.cli", *args, "--out", str(tmp_path / "ddp"),
         "--devices", "2"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "x 2 processes" in proc.stdout and proc.stdout.count("Saved the model") == 1
    assert main([*args, "--out", str(tmp_path / "one")]) == 0

    ddp = CausCell.load(tmp_path / "ddp")  # saved by rank 0, loaded in this single process
    one = CausCell.load(tmp_path / "one")
    assert ddp.train_params["processes"] == 2 and one.train_params["processes"] == 1
    assert ddp.train_params["steps"] == one.train_params["steps"]  # global batch: same steps
    # quality, measured on the 2-core dev VM: best held-out loss 4.257 (1 process) vs 4.356
    # (2), held-out accuracy age 0.358 / 0.350, domain 0.525 / 0.525, cell type 0.983 / 0.975;
    # the processes draw other training noise, hence tolerances rather than equality
    assert ddp.train_params["best_val_loss"] == pytest.approx(
        one.train_params["best_val_loss"], rel=0.05)
    data = ad.read_h5ad(table_file)
    n_val = one.train_params["n_val"]
    val = data[np.sort(np.random.default_rng(0).permutation(data.n_obs)[:n_val])]  # seed 0 split
    for c in CONCEPTS:
        truth = val.obs[c].astype(str).to_numpy()
        acc_one = (one.predict_concepts(val)[c].astype(str).to_numpy() == truth).mean()
        acc_ddp = (ddp.predict_concepts(val)[c].astype(str).to_numpy() == truth).mean()
        assert abs(acc_ddp - acc_one) < 0.08, (c, acc_one, acc_ddp)
        assert ddp.history[-1][f"val_acc_{c}"] == pytest.approx(acc_ddp, abs=0.05)
    cf = ddp.counterfactual(data[:20], do={"age": "90wk"}, steps=5)
    assert np.isfinite(cf.X).all()


def test_zarr_table_read_lazily_for_training(tmp_path):
    """``train --backed`` on a SpatialData .zarr: the table's matrix is a lazy dask array."""
    from napari_causcell.datasets import brain_aging
    from napari_causcell.io import read_data

    sdata = brain_aging(n_cells=400, n_genes=60, seed=1)
    sdata.write(tmp_path / "tissue.zarr")
    table = sdata.tables["table"]
    lazy = read_data(tmp_path / "tissue.zarr", backed=True)
    assert hasattr(lazy.X, "compute") and lazy.n_obs == 400
    genes = list(table.var_names)
    src = ExpressionSource(lazy, genes)
    assert src.backed
    idx = np.array([399, 7, 8, 0])
    np.testing.assert_allclose(src.rows(idx), expression(table, genes).toarray()[idx],
                               rtol=1e-6, atol=1e-6)
    model = CausCell(lazy, CONCEPTS, dag=DAG, seed=0, **TINY)
    model.train(max_epochs=1)
    assert model.is_trained and np.isfinite(model.history[-1]["train_total"])


def test_distributed_cli_usage_errors(table_file, tmp_path, capsys):
    from napari_causcell.cli import main

    base = ["train", str(table_file), "--concepts", "age", "--out", str(tmp_path / "m")]
    assert main([*base, "--nodes", "2", "--devices", "1"]) == 2
    assert "--master-addr" in capsys.readouterr().err
    assert main([*base, "--nodes", "2", "--node-rank", "2", "--master-addr", "h"]) == 2
    assert "--node-rank" in capsys.readouterr().err
    assert main([*base, "--devices", "0"]) == 2
    assert main([*base, "--batch-size", "1"]) == 2
    assert not (tmp_path / "m").exists()
