"""The model directory: ``model.pt`` (weights, donor bank, validation cells) and
``causcell.json`` (settings, history), written atomically and verified on reading."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._version import __version__
from ..data import adjacency, validate_dag
from ..data.concepts import ConceptSpace
from ..errors import ModelFileError
from . import _atomic

WEIGHTS_FILE = "model.pt"
META_FILE = "causcell.json"
#: names a model directory may hold: its two files and the temporaries format 1's save wrote
#: inside it (``<file>.tmp``); any other name is the user's and is never deleted
OWN_FILES = (WEIGHTS_FILE, META_FILE, WEIGHTS_FILE + ".tmp", META_FILE + ".tmp")
FORMAT_VERSION = 2  # 2: model.pt and causcell.json carry a shared token and checksums
SETTINGS_KEYS = ("genes", "concepts", "dag", "seed", "layer", "log_normalized", "table_key",
                 "config", "is_trained")
#: ModuleConfig options removed after the ablation measured them (docs/benchmarks.md,
#: "Ablation"), each with the value whose behaviour this version keeps
RETIRED_OPTIONS = {"concept_residual": True, "linear_skip": False, "cond_mlp": False}


def check_model_target(path: Path, overwrite: bool) -> None:
    """Refuse to write a model to ``path`` when that would lose something.

    An existing non-empty ``path`` needs ``overwrite=True`` and must be a model directory
    (only ``model.pt``/``causcell.json``, and the ``model.pt.tmp``/``causcell.json.tmp`` an
    interrupted save of version 0.1 left): other files, a user's ``notes.tmp`` included, are
    never deleted. A file is refused.
    """
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return
    if not path.is_dir():
        raise NotADirectoryError(f"{path} exists and is not a directory; refusing to replace it.")
    names = [p.name for p in path.iterdir()]
    if not names:
        return
    if not overwrite:
        raise FileExistsError(f"{path} exists and is not empty; pass overwrite=True "
                              "(--overwrite) to replace it.")
    foreign = sorted(n for n in names if n not in OWN_FILES)
    if foreign:
        raise FileExistsError(f"{path} holds other files than a model ({', '.join(foreign[:3])}"
                              f"{', ...' if len(foreign) > 3 else ''}); refusing to replace it.")


def settings_digest(meta: Mapping[str, Any]) -> str:
    """Checksum of the settings that must match the weights (stored in ``model.pt``)."""
    core = {k: meta.get(k) for k in SETTINGS_KEYS}
    return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_model_dir(path: Path, meta: dict[str, Any], state: dict[str, Any],
                    overwrite: bool = False) -> Path:
    """Write the directory whole under a hidden name next to ``path`` and switch it into
    place in one step, so a kill leaves the old model or the new one, never a mix."""
    path = Path(path)
    check_model_target(path, overwrite)
    meta = json.loads(json.dumps({"format": "napari-causcell-model",
                                  "format_version": FORMAT_VERSION, "version": __version__,
                                  **meta}))  # exactly what load will read
    token = uuid.uuid4().hex
    state = {**state, "token": token, "settings_sha256": settings_digest(meta)}
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic.remove_leftovers(path)
    tmp = _atomic.temp_sibling(path)
    try:
        tmp.mkdir()
        torch.save(state, tmp / WEIGHTS_FILE)
        meta["token"] = token
        meta["weights_sha256"] = sha256(tmp / WEIGHTS_FILE)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1))
        _atomic.kill_point("model-written")
        _atomic.replace_dir(tmp, path)
    except BaseException:
        _atomic.remove(tmp)
        raise
    return path


def read_model_dir(path: str | Path,
                   allow_unverified: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(meta, state)`` of a directory written by :func:`write_model_dir`, verified:
    complete, parseable, files of one save, settings unchanged since.

    A format-1 directory (written before models carried a token and checksums) cannot be
    verified and is refused unless ``allow_unverified``; see :func:`check_model_files`."""
    path = Path(path)
    meta_file, weights_file = path / META_FILE, path / WEIGHTS_FILE
    if not path.is_dir():
        raise ModelFileError(f"{path} is not a model directory.")
    for f in (meta_file, weights_file):
        if not f.is_file():
            raise ModelFileError(f"{path} is incomplete: {f.name} is missing.")
    try:
        meta = json.loads(meta_file.read_text())
        if not isinstance(meta, dict) or meta.get("format") != "napari-causcell-model":
            raise ValueError("not a napari-causcell model")
        state = torch.load(weights_file, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any parse failure means a bad directory
        raise ModelFileError(f"{path} is corrupt or truncated: {err}") from err
    check_model_files(path, meta, state, weights_file, allow_unverified=allow_unverified)
    return meta, state


#: what format 2 added; a real format-1 directory has none of them
_META_CHECKS, _STATE_CHECKS = ("token", "weights_sha256"), ("token", "settings_sha256")


def check_model_files(path: Path, meta: dict, state: Any, weights_file: Path,
                      allow_unverified: bool = False) -> None:
    """Format version, completeness and the pairing of ``model.pt`` with ``causcell.json``.

    Verification cannot be switched off by the files it checks: a directory holding any of
    format 2's checks (``token``/``weights_sha256`` in ``causcell.json``, ``token``/
    ``settings_sha256`` in ``model.pt``) is verified as format 2 whatever its
    ``format_version`` says (a real format-1 directory never had them). A real format-1
    directory (none of them) has nothing to verify with and is refused unless
    ``allow_unverified``.
    """
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or not (
            1 <= version <= FORMAT_VERSION):
        raise ModelFileError(
            f"{path} has format_version {version!r}; this napari-causcell "
            f"({__version__}) reads versions 1 to {FORMAT_VERSION}"
            + (": update napari-causcell." if isinstance(version, int) and version > 1 else ".")
        )
    missing = [k for k in (*SETTINGS_KEYS, "history", "train_params") if k not in meta]
    if missing:
        raise ModelFileError(f"{path} is incomplete: causcell.json lacks {', '.join(missing)}.")
    if not isinstance(state, dict) or not isinstance(state.get("module"), dict) or \
            not isinstance(state.get("donors"), dict):
        raise ModelFileError(f"{path}: model.pt does not hold a napari-causcell model.")
    has_checks = any(k in meta for k in _META_CHECKS) or any(k in state for k in _STATE_CHECKS)
    if version >= 2 or has_checks:
        if meta.get("token") != state.get("token") or meta.get("weights_sha256") != sha256(
                weights_file):
            raise ModelFileError(
                f"{path}: model.pt and causcell.json do not belong together (files from "
                "different saves, or one was replaced or damaged); save the model again.")
        if state.get("settings_sha256") != settings_digest(meta):
            raise ModelFileError(
                f"{path}: the settings in causcell.json were changed after saving (genes, "
                "concepts, labels, DAG or architecture no longer match the weights).")
    elif not allow_unverified:
        raise ModelFileError(
            f"{path} is an old format-1 model (napari-causcell {meta.get('version', '?')}) "
            "without checksums, so its settings cannot be verified against the weights; if "
            "you trust it, load it with CausCell.load(path, allow_unverified=True) and save it "
            "again to add them.")


def without_retired(config: dict, path: Path, version: Any) -> dict:
    """A saved config without retired options; one set to a removed behaviour is refused."""
    for name, kept in RETIRED_OPTIONS.items():
        if name in config and config.pop(name) != kept:
            raise ModelFileError(
                f"{path} was saved with {name}={not kept!r}, an option this version no longer "
                f"has (measured and removed: docs/benchmarks.md, 'Ablation'). Load it with the "
                f"napari-causcell version that saved it ({version or 'unknown'}).")
    config.setdefault("standardize", False)  # saved before diffusion was standardised
    config.setdefault("u_dim", None)  # saved before the option existed: all entries
    return config


def check_settings(space: ConceptSpace, edges: list, genes: list, config: Mapping) -> None:
    """Settings that contradict each other or the weights' shapes (a tampered file)."""
    from ..data.dag import DAGError

    names = list(space.names)
    if not names or len(set(names)) != len(names) or set(space.categories) != set(names):
        raise ValueError(f"concept names {names} do not match their label lists")
    for name in names:
        labels = space.categories[name]
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ValueError(f"concept {name!r} has labels {labels}")
    if not all(isinstance(g, str) for g in genes) or len(set(genes)) != len(genes):
        raise ValueError("the gene list has duplicates or non-text names")
    try:
        checked = validate_dag(names, [list(e) for e in edges])
    except DAGError as err:
        raise ValueError(f"bad DAG: {err}") from err
    if len(checked) != len(edges):
        raise ValueError("the DAG repeats edges")
    if config.get("n_genes") != len(genes):
        raise ValueError(f"{len(genes)} genes, but the weights are for {config.get('n_genes')}")
    if list(config.get("n_classes", [])) != space.n_classes():
        raise ValueError(f"label counts {space.n_classes()} do not match the weights' "
                         f"{config.get('n_classes')}")
    if np.asarray(config.get("adjacency")).tolist() != adjacency(names, checked).tolist():
        raise ValueError("the DAG does not match the weights' adjacency matrix")


def bad_settings(path: Path, err: Exception) -> ModelFileError:
    """One line for front ends: the settings do not match the weights."""
    what = f"missing setting {err}" if isinstance(err, KeyError) else str(err)
    what = " ".join(what.split()) or type(err).__name__
    return ModelFileError(f"{path}: the settings do not match the weights or are incomplete: "
                          f"{what if len(what) <= 300 else what[:297] + '...'}")
