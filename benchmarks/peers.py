"""Peer models (scVI, biolord, scGen via pertpy, CPA) run in venvs of their own.

The peers are never dependencies of napari-causcell: each lives in a venv that this module
creates from the recipe in ``benchmarks/envs/<env>/`` (``setup.sh`` + requirements files, see
``benchmarks/envs/README.md``) under ``benchmarks/envs/<env>/venv/``. Data passes between our
venv and a peer venv as ``.h5ad`` files: the driver writes a task (``task.json`` naming a train
and a query ``.h5ad``), :func:`run_peer` runs ``benchmarks/adapters/<peer>_adapter.py`` with
the peer venv's Python, and loads what the adapter wrote into ``task["out_dir"]``:

- ``result.json``: peer, package_version, train_seconds, epochs, n_train, cells_per_s, notes
- ``embeddings.npz``: (n_query, d) arrays; "latent" and/or one per concept
- ``reconstruction.h5ad``: query cells generated from their own labels, log1p(CP10k)
- ``cf_<name>.h5ad``: counterfactual expression of the named query rows, with
  ``layers["reconstructed"]`` the same cells without the intervention

This module runs in our venv and needs only the standard library, numpy and anndata.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).resolve().parent
ENVS_DIR = HERE / "envs"
ADAPTERS_DIR = HERE / "adapters"

#: peer name -> name of the venv (``benchmarks/envs/<env>``) it runs in
PEERS: dict[str, str] = {"scvi": "scverse", "biolord": "scverse", "scgen": "scverse", "cpa": "cpa"}

#: peers of the CausCell paper this benchmark does not run, and why
NOT_RUN: dict[str, str] = {
    "scDisInFact": "not on PyPI (GitHub only), so the benchmark's own set-up cannot install it",
    "MichiGAN": "TensorFlow 1.15 / Python 3.7 research scripts, GitHub only (no registry "
    "package); cannot share Python 3.11 with the other peers",
}

#: what each venv must import for its set-up to count as successful
IMPORT_CHECK: dict[str, str] = {
    "scverse": "import scvi, biolord, pertpy, scanpy, anndata; "
    "print('scvi-tools', scvi.__version__, 'biolord', biolord.__version__, "
    "'pertpy', pertpy.__version__)",
    "cpa": "import cpa, scvi, scanpy, anndata; "
    "print('cpa', cpa.__version__, 'scvi-tools', scvi.__version__)",
}

MARKER = ".peers_ready"


def _check_env(env: str) -> str:
    if env not in IMPORT_CHECK:
        raise ValueError(f"unknown peer env {env!r}; known: {sorted(IMPORT_CHECK)}")
    return env


def _check_peer(peer: str) -> str:
    if peer not in PEERS:
        why = f" ({NOT_RUN[peer]})" if peer in NOT_RUN else ""
        raise KeyError(f"unknown peer {peer!r}{why}; peers that run: {sorted(PEERS)}")
    return peer


def env_dir(env: str) -> Path:
    return ENVS_DIR / _check_env(env)


def venv_dir(env: str) -> Path:
    return env_dir(env) / "venv"


def env_python(env: str) -> Path:
    """The Python interpreter of the peer venv ``env`` (it may not exist yet)."""
    return venv_dir(env) / "bin" / "python"


def adapter_path(peer: str) -> Path:
    return ADAPTERS_DIR / f"{_check_peer(peer)}_adapter.py"


def is_ready(env: str) -> bool:
    """True when the venv exists and its set-up (install + import check) has succeeded."""
    return env_python(env).exists() and (venv_dir(env) / MARKER).exists()


def _thread_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                "PYTHONUNBUFFERED": "1", "PYTHONNOUSERSITE": "1"})
    # our venv must not leak into the peer's interpreter
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    if extra:
        env.update(extra)
    return env


def _tail(path: Path, n: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


def _base_python() -> str:
    """A Python 3.11 outside any venv, to create the peer venvs from."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return base if Path(base).exists() else sys.executable


def setup(env: str, force: bool = False, log: Callable[[str], object] = print) -> Path:
    """Create the peer venv ``env`` from its recipe unless it is ready; return its Python.

    Runs ``benchmarks/envs/<env>/setup.sh`` (pip output goes to ``benchmarks/envs/<env>/
    setup.log``), then an import check, then writes the marker file that :func:`is_ready`
    looks for. Raises RuntimeError naming the log when a step fails.
    """
    _check_env(env)
    py = env_python(env)
    if is_ready(env) and not force:
        return py
    vdir = venv_dir(env)
    logfile = env_dir(env) / "setup.log"
    marker = vdir / MARKER
    if marker.exists():
        marker.unlink()
    if force and vdir.exists():
        import shutil

        shutil.rmtree(vdir)
    t0 = time.time()
    log(f"[peers] setting up venv {env!r} at {vdir} (log: {logfile})")
    with open(logfile, "w") as fh:
        fh.write(f"# setup of {env} started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        fh.flush()
        proc = subprocess.run(
            ["bash", str(env_dir(env) / "setup.sh"), str(vdir)],
            stdout=fh, stderr=subprocess.STDOUT,
            env=_thread_env({"PYTHON": _base_python()}),
        )
    if proc.returncode != 0:
        raise RuntimeError(
            f"set-up of peer venv {env!r} failed (exit {proc.returncode}); see {logfile}:\n"
            + _tail(logfile, 20))
    log(f"[peers] {env}: installed in {time.time() - t0:.0f} s; import check")
    with open(logfile, "a") as fh:
        fh.write(f"# import check: {IMPORT_CHECK[env]}\n")
        fh.flush()
        chk = subprocess.run([str(py), "-c", IMPORT_CHECK[env]], stdout=fh,
                             stderr=subprocess.STDOUT, env=_thread_env())
    if chk.returncode != 0:
        raise RuntimeError(
            f"peer venv {env!r} installed but its import check failed; see {logfile}:\n"
            + _tail(logfile, 20))
    seconds = time.time() - t0
    with open(logfile, "a") as fh:
        fh.write(f"# setup of {env} done in {seconds:.0f} s\n")
    marker.write_text(json.dumps({"env": env, "setup_seconds": round(seconds, 1),
                                  "finished": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")
    log(f"[peers] {env}: ready in {seconds:.0f} s")
    return py


def _load_outputs(task: dict) -> dict:
    import anndata as ad

    out = Path(task["out_dir"])
    result = json.loads((out / "result.json").read_text())
    emb_path = out / "embeddings.npz"
    embeddings: dict[str, np.ndarray] = {}
    if emb_path.exists():
        with np.load(emb_path) as z:
            embeddings = {k: np.asarray(z[k]) for k in z.files}
    reconstruction = ad.read_h5ad(out / "reconstruction.h5ad")
    cfs = {}
    for cf in task.get("counterfactuals", []):
        p = out / f"cf_{cf['name']}.h5ad"
        if p.exists():
            cfs[cf["name"]] = ad.read_h5ad(p)
    return {"result": result, "embeddings": embeddings, "reconstruction": reconstruction,
            "counterfactuals": cfs}


def run_peer(peer: str, task: dict, workdir: Path, timeout: float | None = None) -> dict:
    """Run one peer's adapter on ``task`` in the peer's venv and load its outputs.

    Writes ``workdir/task.json``, logs the adapter's stdout/stderr to ``workdir/<peer>.log``
    and raises RuntimeError with the log's tail when it exits non-zero or runs past
    ``timeout`` seconds. Returns {"result", "embeddings", "reconstruction", "counterfactuals"}.
    """
    _check_peer(peer)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    task = dict(task)
    task.setdefault("peer", peer)
    task.setdefault("out_dir", str(workdir / "out"))
    Path(task["out_dir"]).mkdir(parents=True, exist_ok=True)
    task_path = workdir / "task.json"
    task_path.write_text(json.dumps(task, indent=1))
    py = env_python(PEERS[peer])
    if not py.exists():
        raise RuntimeError(f"peer venv {PEERS[peer]!r} for {peer!r} does not exist at {py}; "
                           f"run benchmarks.peers.setup({PEERS[peer]!r}) first")
    logfile = workdir / f"{peer}.log"
    cmd = [str(py), str(adapter_path(peer)), str(task_path)]
    with open(logfile, "w") as fh:
        fh.write("# " + " ".join(cmd) + "\n")
        fh.flush()
        try:
            proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT,
                                  env=_thread_env(), timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"peer {peer!r} timed out after {timeout} s; log {logfile}:\n"
                               + _tail(logfile)) from None
    if proc.returncode != 0:
        raise RuntimeError(f"peer {peer!r} failed (exit {proc.returncode}); log {logfile}:\n"
                           + _tail(logfile))
    return _load_outputs(task)


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(description="set up the peer-model venvs")
    p.add_argument("envs", nargs="*", default=sorted(IMPORT_CHECK))
    p.add_argument("--force", action="store_true")
    a = p.parse_args(argv)
    for env in a.envs:
        print(env, "->", setup(env, force=a.force))


if __name__ == "__main__":
    main()
