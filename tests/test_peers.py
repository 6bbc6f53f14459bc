"""benchmarks/peers.py: peer models run in venvs of their own, data passes as .h5ad.

The first tests need no peer venv (a fake adapter runs on our own interpreter); the tests
marked ``peers`` run each real adapter on a tiny task and are skipped while the peer's venv
is not set up (``python -m benchmarks.peers`` sets them up).
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import peers  # noqa: E402

CONCEPTS = ["age", "domain", "cell_type"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """train/query .h5ad (raw counts, the concept columns as str categoricals) and a task."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    from napari_causcell.datasets import brain_aging

    t = brain_aging(600, 60, seed=0).tables["table"]
    obs = pd.DataFrame({c: pd.Categorical(t.obs[c].astype(str)) for c in CONCEPTS},
                       index=[str(i) for i in t.obs_names])
    a = ad.AnnData(X=sp.csr_matrix(t.X, dtype=np.float32), obs=obs,
                   var=pd.DataFrame(index=[str(g) for g in t.var_names]))
    perm = np.random.default_rng(0).permutation(a.n_obs)
    nq = a.n_obs // 5
    query, train = a[np.sort(perm[:nq])].copy(), a[np.sort(perm[nq:])].copy()
    d = tmp_path_factory.mktemp("peerdata")
    train.write_h5ad(d / "train.h5ad")
    query.write_h5ad(d / "query.h5ad")
    ages = query.obs["age"].astype(str).to_numpy()
    doms = query.obs["domain"].astype(str).to_numpy()
    dom0 = sorted(set(doms))[0]
    task = {
        "train_h5ad": str(d / "train.h5ad"),
        "query_h5ad": str(d / "query.h5ad"),
        "concepts": CONCEPTS,
        "counterfactuals": [
            {"name": "age_90wk", "do": {"age": "90wk"},
             "cells": [int(i) for i in np.where(ages != "90wk")[0][:25]]},
            {"name": "domain_" + dom0.replace("/", "_"), "do": {"domain": dom0},
             "cells": [int(i) for i in np.where(doms != dom0)[0][:15]]},
            # an intervention that sets the label the cells already have: must change nothing
            {"name": "age_noop", "do": {"age": "4wk"},
             "cells": [int(i) for i in np.where(ages == "4wk")[0][:10]]},
        ],
        "seed": 0,
        "max_epochs": 8,
        "max_time": 60.0,
    }
    return task, query


FAKE_ADAPTER = """
import json, sys
sys.path.insert(0, {adapters!r})
import numpy as np
import _common as C

task = C.load_task()
if {fail!r}:
    print("about to fail: fake adapter error 1234", flush=True)
    raise SystemExit(3)
train, query = C.read_inputs(task)
rec = query.layers[C.LOG_LAYER]
cfs = {{cf["name"]: (rec[cf["cells"]] + 1.0, rec[cf["cells"]])
        for cf in task["counterfactuals"]}}
C.write_outputs(task, query, package_version="0.0", train_seconds=2.0, epochs=4,
                n_train=train.n_obs, notes=["fake"],
                embeddings={{"latent": np.ones((query.n_obs, 3)), "age": np.zeros(query.n_obs)}},
                reconstruction=rec, counterfactuals=cfs)
"""


def _fake(monkeypatch, tmp_path, fail=False):
    script = tmp_path / "fake_adapter.py"
    script.write_text(textwrap.dedent(FAKE_ADAPTER.format(
        adapters=str(peers.ADAPTERS_DIR), fail=fail)))
    monkeypatch.setattr(peers, "env_python", lambda env: Path(sys.executable))
    monkeypatch.setattr(peers, "adapter_path", lambda peer: script)
    return script


def test_peer_tables():
    assert peers.PEERS == {"scvi": "scverse", "biolord": "scverse", "scgen": "scverse",
                           "cpa": "cpa"}
    assert set(peers.NOT_RUN) == {"scDisInFact", "MichiGAN"}
    assert all(isinstance(v, str) and v for v in peers.NOT_RUN.values())
    for peer, env in peers.PEERS.items():
        assert peers.adapter_path(peer).exists(), peer
        assert (peers.ENVS_DIR / env / "setup.sh").exists()
        assert peers.env_python(env) == peers.ENVS_DIR / env / "venv" / "bin" / "python"
        assert isinstance(peers.is_ready(env), bool)


def test_unknown_peer_and_env(tmp_path):
    with pytest.raises(KeyError, match="unknown peer 'nope'"):
        peers.run_peer("nope", {}, tmp_path)
    with pytest.raises(KeyError, match="GitHub only"):
        peers.run_peer("scDisInFact", {}, tmp_path)
    with pytest.raises(ValueError, match="unknown peer env"):
        peers.setup("nope")
    with pytest.raises(ValueError, match="unknown peer env"):
        peers.env_python("nope")


def test_run_peer_loads_outputs(monkeypatch, tmp_path, tiny_data):
    task, query = tiny_data
    _fake(monkeypatch, tmp_path)
    task = dict(task, peer="scvi", out_dir=str(tmp_path / "out"))
    res = peers.run_peer("scvi", task, tmp_path / "work")
    written = json.loads((tmp_path / "work" / "task.json").read_text())
    assert written["train_h5ad"] == task["train_h5ad"]
    assert written["counterfactuals"] == task["counterfactuals"]
    assert (tmp_path / "work" / "scvi.log").exists()

    r = res["result"]
    assert r["peer"] == "scvi" and r["epochs"] == 4 and r["notes"] == ["fake"]
    assert r["n_train"] == 480 and r["cells_per_s"] == pytest.approx(480 * 4 / 2.0)
    assert set(res["embeddings"]) == {"latent", "age"}
    assert res["embeddings"]["latent"].shape == (query.n_obs, 3)
    assert res["embeddings"]["age"].shape == (query.n_obs, 1)

    rec = res["reconstruction"]
    assert rec.shape == query.shape and rec.X.dtype == np.float32
    assert list(rec.obs_names) == list(query.obs_names)
    assert list(rec.var_names) == list(query.var_names)
    assert set(res["counterfactuals"]) == {cf["name"] for cf in task["counterfactuals"]}
    for cf in task["counterfactuals"]:
        a = res["counterfactuals"][cf["name"]]
        (c, v), = cf["do"].items()
        assert a.shape == (len(cf["cells"]), query.n_vars)
        assert list(a.obs_names) == list(query.obs_names[cf["cells"]])
        assert (a.obs[c].astype(str) == v).all()
        others = [k for k in CONCEPTS if k != c]
        assert (a.obs[others].astype(str).to_numpy()
                == query.obs[others].astype(str).to_numpy()[cf["cells"]]).all()
        np.testing.assert_allclose(a.X - a.layers["reconstructed"], 1.0, rtol=1e-5)
        # the "reconstructed" layer is log1p(CP10k) of the observed cells here
        np.testing.assert_allclose(np.expm1(a.layers["reconstructed"]).sum(1), 1e4, rtol=1e-3)


def test_run_peer_failure_has_log_tail(monkeypatch, tmp_path, tiny_data):
    task, _ = tiny_data
    _fake(monkeypatch, tmp_path, fail=True)
    with pytest.raises(RuntimeError, match=r"(?s)'biolord' failed \(exit 3\).*fake adapter "
                       r"error 1234"):
        peers.run_peer("biolord", dict(task, out_dir=str(tmp_path / "o")), tmp_path / "w")


def test_run_peer_timeout(monkeypatch, tmp_path, tiny_data):
    task, _ = tiny_data
    script = _fake(monkeypatch, tmp_path)
    script.write_text("import time\nprint('sleeping', flush=True)\ntime.sleep(30)\n")
    with pytest.raises(RuntimeError, match=r"(?s)timed out after 1.*sleeping"):
        peers.run_peer("scgen", dict(task, out_dir=str(tmp_path / "o")), tmp_path / "w",
                       timeout=1.0)


def test_missing_venv_is_clear(monkeypatch, tmp_path, tiny_data):
    task, _ = tiny_data
    monkeypatch.setattr(peers, "env_python", lambda env: tmp_path / "no" / "python")
    with pytest.raises(RuntimeError, match=r"setup\('cpa'\)"):
        peers.run_peer("cpa", dict(task, out_dir=str(tmp_path / "o")), tmp_path / "w")


def test_is_ready_needs_marker(monkeypatch, tmp_path):
    monkeypatch.setattr(peers, "ENVS_DIR", tmp_path)
    py = tmp_path / "scverse" / "venv" / "bin" / "python"
    assert not peers.is_ready("scverse")
    py.parent.mkdir(parents=True)
    py.write_text("")
    assert not peers.is_ready("scverse")
    (tmp_path / "scverse" / "venv" / peers.MARKER).write_text("{}")
    assert peers.is_ready("scverse")


def _fake_recipe(tmp_path, monkeypatch, body):
    monkeypatch.setattr(peers, "ENVS_DIR", tmp_path)
    d = tmp_path / "scverse"
    d.mkdir(exist_ok=True)
    (d / "setup.sh").write_text("set -e\nVENV=$1\n" + body)
    return d


def test_setup_runs_recipe_and_checks(monkeypatch, tmp_path):
    # a recipe that fails: RuntimeError naming the log, with its tail
    d = _fake_recipe(tmp_path, monkeypatch, "echo 'pip says no 987'\nexit 4\n")
    with pytest.raises(RuntimeError, match=r"(?s)failed \(exit 4\).*setup.log.*pip says no 987"):
        peers.setup("scverse", log=lambda m: None)
    assert not peers.is_ready("scverse")
    # a recipe that "installs" a venv whose interpreter is ours: the import check of scvi etc.
    # fails unless they are importable
    body = f"mkdir -p $VENV/bin\nln -sf {sys.executable} $VENV/bin/python\necho installed\n"
    _fake_recipe(tmp_path, monkeypatch, body)
    monkeypatch.setitem(peers.IMPORT_CHECK, "scverse", "import no_such_module_xyz")
    with pytest.raises(RuntimeError, match="import check failed"):
        peers.setup("scverse", log=lambda m: None)
    assert not peers.is_ready("scverse")
    monkeypatch.setitem(peers.IMPORT_CHECK, "scverse", "print('imports ok')")
    msgs = []
    py = peers.setup("scverse", log=msgs.append)
    assert py == d / "venv" / "bin" / "python" and peers.is_ready("scverse")
    assert "imports ok" in (d / "setup.log").read_text()
    assert json.loads((d / "venv" / peers.MARKER).read_text())["env"] == "scverse"
    # ready: no second install
    (d / "setup.sh").write_text("exit 1\n")
    assert peers.setup("scverse", log=msgs.append) == py


def test_common_lognorm():
    sys.path.insert(0, str(peers.ADAPTERS_DIR))
    try:
        import _common as C
    finally:
        sys.path.remove(str(peers.ADAPTERS_DIR))
    X = np.array([[1.0, 3.0, 0.0], [0.0, 0.0, 0.0]])
    L = C.lognorm(X)
    np.testing.assert_allclose(L[0], np.log1p([2500.0, 7500.0, 0.0]), rtol=1e-6)
    np.testing.assert_allclose(L[1], 0.0)
    np.testing.assert_allclose(C.fractions_to_lognorm([[0.25, 0.75, 0.0]]), L[:1], rtol=1e-6)
    assert C.plan_epochs(100, 10.0, 0.5) == 20
    assert C.plan_epochs(5, 10.0, 0.5) == 5
    assert C.plan_epochs(5, 10.0, 0.5, spent=12.0) == 0
    assert C.plan_epochs(7, None, 99.0) == 7


@pytest.mark.peers
@pytest.mark.parametrize("peer", sorted(peers.PEERS))
def test_real_peer(peer, tmp_path, tiny_data):
    env = peers.PEERS[peer]
    if not peers.is_ready(env):
        pytest.skip(f"peer venv {env!r} not set up (python -m benchmarks.peers {env})")
    task, query = tiny_data
    task = dict(task, peer=peer, out_dir=str(tmp_path / "out"))
    res = peers.run_peer(peer, task, tmp_path / "work", timeout=600)
    r = res["result"]
    assert r["peer"] == peer and r["package_version"]
    # CPA trains one model per intervened concept and reports their epochs summed
    n_models = len(r.get("models", [None]))
    assert 1 <= r["epochs"] <= task["max_epochs"] * n_models
    assert r["train_seconds"] > 0 and r["cells_per_s"] > 0
    assert "latent" in res["embeddings"]
    for k, e in res["embeddings"].items():
        assert k == "latent" or k in CONCEPTS
        assert e.shape[0] == query.n_obs and e.ndim == 2 and np.isfinite(e).all(), k
    rec = res["reconstruction"]
    assert rec.shape == query.shape and np.isfinite(rec.X).all()
    assert list(rec.obs_names) == list(query.obs_names)
    # log1p(CP10k) is non-negative; the gaussian models (biolord, scGen) are not bounded above
    assert rec.X.min() >= -1e-3
    # reconstructions should track the observed log-normalised expression a little
    import scipy.sparse as sp

    X = query.X.toarray() if sp.issparse(query.X) else np.asarray(query.X)
    lib = X.sum(1, keepdims=True)
    obs_ln = np.log1p(X / np.maximum(lib, 1) * 1e4)
    r_gene = np.corrcoef(obs_ln.mean(0), np.asarray(rec.X).mean(0))[0, 1]
    assert r_gene > 0.5, r_gene
    assert set(res["counterfactuals"]) == {cf["name"] for cf in task["counterfactuals"]}
    for cf in task["counterfactuals"]:
        a = res["counterfactuals"][cf["name"]]
        (c, v), = cf["do"].items()
        assert a.shape == (len(cf["cells"]), query.n_vars)
        assert np.isfinite(a.X).all() and np.isfinite(a.layers["reconstructed"]).all()
        assert (a.obs[c].astype(str) == v).all()
        assert list(a.obs_names) == list(query.obs_names[cf["cells"]])
        diff = np.abs(np.asarray(a.X) - np.asarray(a.layers["reconstructed"])).mean()
        if cf["name"] == "age_noop":
            assert diff < 1e-5, diff
        else:
            assert diff > 1e-4, (cf["name"], diff)
