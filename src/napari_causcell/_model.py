"""CausCell: the user-facing model that knows AnnData and SpatialData.

Training lives in :mod:`napari_causcell.train` (Lightning), the counterfactual engine in
:mod:`napari_causcell.cf`, the model directory in :mod:`napari_causcell.io`.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import torch

from . import _checks, cf
from ._constants import DEFAULT_STEPS
from ._keys import Key
from ._utils import pick_device
from .data import adjacency, descendants, resolve_table, select_genes, validate_dag
from .data.concepts import ConceptSpace
from .data.stream import ExpressionSource
from .errors import ConceptError, DataError, ModelFileError, NotTrainedError, SettingError
from .io import _model_dir as model_dir
from .model import CausCellModule, LossWeights, ModuleConfig
from .train import TrainProgress
from .train._data import TrainData, split

EMA_DECAY = 0.995  # weight averaging in train(): ablation in docs/benchmarks.md
U_RESIDUAL_KL = 0.1  # u's KL weight with u_residual=True (docs/benchmarks.md, seventh round)
#: state added after format 1 models were written: older files load with the module's defaults
_NEW_STATE = ("x_mean", "x_std", "label_scm.")


def _checked(method):
    """Settings (sampler, counts, seed, choices, do's concepts and labels) are checked before
    any work, with a :class:`~napari_causcell.SettingError` / ``ConceptError``."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        _checks.sampling(kwargs)
        do = args[1] if len(args) > 1 else kwargs.get("do")
        if isinstance(do, Mapping):
            for concept, label in do.items():
                self.concept_space.code(concept, label)
        return method(self, *args, **kwargs)

    return wrapper


class CausCell:
    """Causal disentanglement with conditional diffusion for single-cell and spatial data.

    Parameters
    ----------
    data
        AnnData, or SpatialData with a table (``table_key``).
    concepts
        Categorical ``obs`` columns used as observed concepts (e.g. age, domain, cell type).
    dag
        Causal edges between concepts, ``[("age", "cell_type"), ...]`` or ``"age->cell_type"``.
        ``[]`` or ``None`` gives independent concepts (the CausCell_IND ablation).
    table_key, layer
        Table of a SpatialData; layer holding the counts (default ``.X``).
    log_normalized
        ``True`` when the matrix is already ``log1p``-normalised; otherwise raw counts are
        normalised to 10,000 per cell then ``log1p``'d.
    max_genes
        Above this many genes, keep that many highly variable genes.
    seed
        Seed of weights, data split, batches and sampling.
    device
        ``"cuda"``, ``"mps"``, ``"cpu"`` or ``None`` (automatic).
    **module_kwargs
        Architecture options of :class:`~napari_causcell.model.ModuleConfig` (``token_dim``,
        ``hidden``, ``width``, ``depth``, ``heads``, ``n_queries``, ``n_steps``, ``dropout``,
        ``anchor``, ``u_shuffle``, ``t_power``, ``standardize``, ``u_dim``, ``u_residual``,
        ``u_kl``); what each does and what the ablation measured: docs/benchmarks.md.
    """

    def __init__(self, data: Any, concepts: Sequence[str] | None = None, dag: Any = None, *,
                 table_key: str | None = None, layer: str | None = None,
                 log_normalized: bool = False, max_genes: int = 2000, seed: int = 0,
                 device: str | None = None, _saved: dict | None = None,
                 **module_kwargs: Any) -> None:
        _checks.count("max_genes", max_genes, 1)  # impossible settings fail before any work
        _checks.count("seed", seed, 0)
        _checks.architecture(module_kwargs)
        self.device = pick_device(device)
        adata = None
        if data is not None or _saved is None:
            adata, resolved = resolve_table(data, table_key)
            table_key = table_key if _saved is not None else resolved
        if _saved is None:
            self.concept_space = ConceptSpace.from_obs(adata.obs, concepts)
            if module_kwargs.get("u_residual"):
                module_kwargs.setdefault("u_kl", U_RESIDUAL_KL)
                _checks.label_combinations(self.concept_space.n_classes())
            self.edges = validate_dag(self.concept_space.names, dag)
            self.genes = select_genes(adata, layer, log_normalized, max_genes)
            config = ModuleConfig(
                n_genes=len(self.genes), n_classes=self.concept_space.n_classes(),
                adjacency=adjacency(self.concept_space.names, self.edges).tolist(),
                **module_kwargs)
        else:
            self.concept_space, self.edges = _saved["space"], _saved["edges"]
            self.genes, config = _saved["genes"], _saved["config"]
        self.layer, self.log_normalized, self.table_key = layer, log_normalized, table_key
        self.seed = int(seed)
        torch.manual_seed(self.seed)
        self.module = CausCellModule(config).to(self.device)
        self.history: list[dict[str, float]] = []
        self.train_params: dict[str, Any] = {}
        self.is_trained = False
        self.donors = cf.DonorBank()
        self.val_names: list[str] | None = None  # validation cells of the last training
        self._stop = threading.Event()
        self._adata = adata
        if _saved is not None:
            self._set_saved(_saved)

    @property
    def concepts(self) -> list[str]:
        return list(self.concept_space.names)

    @property
    def token_names(self) -> list[str]:
        return self.concepts + ["u"]

    def __repr__(self) -> str:
        dag = ", ".join(f"{a}->{b}" for a, b in self.edges) or "none (independent)"
        n = sum(p.numel() for p in self.module.parameters())
        return (f"CausCell({len(self.genes)} genes, concepts={self.concepts}, dag=[{dag}], "
                f"{n:,} parameters, device={self.device}, trained={self.is_trained})")

    # -- data --------------------------------------------------------------------------------
    def _table(self, data: Any = None, table_key: str | None = None) -> ad.AnnData:
        if data is None and self._adata is None:
            raise DataError("This model was loaded from disk and holds no cells: pass the "
                            "AnnData/SpatialData, e.g. tl.leakage(model, data).")
        return self._adata if data is None else resolve_table(data, table_key or self.table_key)[0]

    def _source(self, adata: ad.AnnData) -> ExpressionSource:
        """The model's input for ``adata``, read and normalised chunk by chunk."""
        if adata.n_obs == 0:
            raise DataError("The cell selection is empty: choose at least one cell.")
        return ExpressionSource(adata, self.genes, self.layer, self.log_normalized)

    # -- training ----------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Ask the running :meth:`train`, or the next one, to stop after its current (or
        first) step (thread-safe); the model keeps the best weights so far."""
        self._stop.set()

    def train(self, max_epochs: int = 200, *, batch_size: int = 256, lr: float = 2e-3,
              weight_decay: float = 1e-4, validation_fraction: float = 0.1,
              early_stopping: bool = True, patience: int = 25, max_time: float | None = None,
              weights: LossWeights | Mapping[str, float] | None = None,
              callbacks: Sequence[Callable[[TrainProgress], Any]] | Callable | None = None,
              progress_bar: bool = False, precision: str = "32", select: str = "recon",
              ema: float = EMA_DECAY, accelerator: str | None = None, devices: Any = None,
              strategy: Any = None, trainer_kwargs: Mapping[str, Any] | None = None,
              ) -> list[dict[str, float]]:
        """Train on the model's data (Lightning); returns the per-epoch ``history``.

        A seeded ``validation_fraction`` of the cells (the saved validation cells when
        fine-tuning a loaded model) selects the weights kept (``select``: ``"recon"`` or
        ``"recon+concept"``) and drives early stopping (``patience`` epochs); ``ema`` is the
        decay of the weight average that validation and the returned model use (0: off).
        ``max_time`` is a budget in seconds. ``callbacks`` get a :class:`TrainProgress` after
        every epoch; returning ``False``, ``progress.stop()`` or :meth:`request_stop` stop
        training with a usable model. ``weights`` sets the loss terms (``recon``,
        ``concept``, ``adversary``, ``kl``). ``precision="bf16"`` (``"bf16-mixed"``) uses
        bfloat16 autocast on CUDA (ignored elsewhere). ``accelerator``, ``devices``,
        ``strategy`` and ``trainer_kwargs`` go to Lightning's ``Trainer``; inside a
        ``torchrun`` process group training is data-parallel over all its processes
        (docs/scale.md). A failed run restores the model as it was, or keeps the last weights
        whose losses were finite.
        """
        from .train import _runner

        if self._adata is None:
            raise DataError("This model was loaded without data: load it with "
                            "CausCell.load(path, data=adata) to train it further.")
        s = _runner.TrainSettings(
            max_epochs, batch_size, lr, weight_decay, early_stopping, patience, max_time,
            _checks.loss_weights(weights), _checks.choice("select", select, ("recon",
                                                          "recon+concept")), ema, precision,
            progress_bar, accelerator, devices, strategy, dict(trainer_kwargs or {}))
        _checks.train_args(max_epochs=max_epochs, batch_size=batch_size, lr=lr,
                           weight_decay=weight_decay, validation_fraction=validation_fraction,
                           patience=patience, max_time=max_time, ema=ema)
        _runner.check_precision(precision)
        adata = self._adata
        val_idx, train_idx = split(adata.obs_names, self.seed, validation_fraction,
                                   self.val_names)
        codes = self.concept_space.encode(adata.obs)
        data = TrainData(self._source(adata), codes, val_idx, train_idx)
        entry = _runner.Snapshot(self) if self.is_trained else None  # restored on failure
        step0 = self.train_params.get("steps", 0)
        callbacks = [callbacks] if callable(callbacks) else list(callbacks or [])
        try:  # a stop asked for before this call, set-up included, ends it after one step
            out = _runner.fit(self.module, data, s, seed=self.seed, concepts=self.concepts,
                              history=self.history, stop=self._stop, callbacks=callbacks,
                              step0=step0, device=self.device)
        finally:
            self._stop.clear()  # honoured: the next train() starts afresh
        return _runner.settle(self, out, s, data, entry, step0, validation_fraction)

    @property
    def _val_index(self) -> pd.Index | None:
        """Names of the validation cells of the last training (kept by save/load)."""
        return None if self.val_names is None else pd.Index(self.val_names)

    # -- inference ---------------------------------------------------------------------------
    def concept_embeddings(self, data: Any = None, *, table_key: str | None = None,
                           exogenous: bool = False, write: bool = True,
                           use_labels: bool | None = None) -> dict[str, np.ndarray]:
        """Per-concept embeddings ``(n_cells, token_dim)``, ``u`` included (``u_dim`` columns
        when set): the tokens after the SCM (``z``), or before (``exogenous=True``: ``eps``).

        With ``write=True`` each goes to ``obsm['X_causcell_<concept>']``. Tokens are anchored
        on obs labels when every concept column is there (``use_labels=None``);
        ``use_labels=False`` uses the labels predicted from expression.
        """
        adata = self._table(data, table_key)
        eps = cf.exogenous(self, adata, self._source(adata), use_labels)
        tok = eps if exogenous else self.module.tokens(eps)
        out = {name: tok[:, k].cpu().numpy() for k, name in enumerate(self.token_names)}
        if self.module.config.u_dim is not None:  # u's other entries are fixed at zero
            out["u"] = out["u"][:, : self.module.config.u_dim]
        if write:
            for name, emb in out.items():
                adata.obsm[Key.obsm.embedding(name)] = emb
        return out

    @torch.no_grad()
    def predict_concepts(self, data: Any = None, *, table_key: str | None = None,
                         probabilities: bool = False) -> pd.DataFrame:
        """Labels predicted from expression alone (columns = concepts), ``<c>_prob``, and with
        ``probabilities=True`` one ``<concept>:<label>`` column per label."""
        adata = self._table(data, table_key)
        resid = cf.encode(self, self._source(adata))
        df = pd.DataFrame(index=adata.obs_names.copy())
        for name, logits in zip(self.concepts, self.module.classify(resid)):
            p = logits.softmax(-1).cpu().numpy()
            df[name] = self.concept_space.decode(name, p.argmax(1))
            df[f"{name}_prob"] = p.max(1)
            if probabilities:
                for j, label in enumerate(self.concept_space.categories[name]):
                    df[f"{name}:{label}"] = p[:, j]
        return df

    @_checked
    def reconstruct(self, data: Any = None, *, table_key: str | None = None,
                    sampler: str = "mean", steps: int = DEFAULT_STEPS, seed: int | None = None,
                    batch_size: int = 4096, progress: Callable[[float], Any] | None = None,
                    ) -> ad.AnnData:
        """Every cell generated from its own concepts: its expected expression
        (``sampler="mean"``) or one sample (``"ddim"`` with ``steps``, ``"ddpm"``).

        ``.X`` the generated log-normalised expression, ``layers['factual']`` the input,
        ``uns['causcell']['output']`` ``"expected"`` or ``"sample"``; ``progress(fraction)``
        is called after every sampler step.
        """
        adata = self._table(data, table_key)
        x = self._source(adata)
        z = self.module.tokens(cf.exogenous(self, adata, x))
        noise = cf.noise_for(cf.cell_keys(adata.obs_names), self.seed if seed is None else seed,
                             cf.SAMPLER)
        gen = cf.predict(self.module, z, sampler, steps, noise, batch_size, progress)
        out = ad.AnnData(gen, obs=adata.obs.copy(), var=pd.DataFrame(index=list(self.genes)))
        if "spatial" in adata.obsm:
            out.obsm["spatial"] = np.asarray(adata.obsm["spatial"])
        out.layers[Key.layers.FACTUAL] = x.dense()
        out.uns[Key.uns.CAUSCELL] = {"kind": "reconstruction", "sampler": sampler,
                                     "steps": steps,
                                     "output": "expected" if sampler == "mean" else "sample"}
        return out

    @_checked
    @torch.no_grad()
    def counterfactual(self, data: Any = None, do: Mapping[str, Any] | None = None, *,
                       table_key: str | None = None, donor: str = "random", hard: bool = True,
                       propagate: str = "labels", hold: Sequence[str] | None = None,
                       unseen: str = "average", sampler: str = "mean",
                       steps: int = DEFAULT_STEPS, n_samples: int = 1, seed: int | None = None,
                       batch_size: int = 4096, progress: Callable[[float], Any] | None = None
                       ) -> ad.AnnData:
        """Counterfactual cells under ``do(concept = label)`` (several concepts together).

        Abduction encodes each cell; action replaces the intervened concepts' tokens by a
        donor's (``donor="random"``: a training cell with that label; ``"mean"``: the label's
        mean token; ``hard=True`` cuts the edges into them) and, with
        ``propagate="labels"``, recomputes the descendants' labels through the label SCM
        with each cell's own noise (``"tokens"``: labels kept, tokens moved); ``hold``:
        concepts kept at each cell's own label (``hold=["cell_type"]`` asks "this cell, with
        its type, under do()"; without it the type may respond, the total effect; README,
        "Which question"); prediction generates expression (``sampler``, ``steps``,
        ``n_samples`` draws per cell). A cell whose new label combination was never seen in
        training keeps its label; ``unseen="average"`` transports the change measured for the
        labels seen with both its old and new parents (``obs['extrapolated']``),
        ``"decoder"`` extrapolates, ``"blend"`` is the mean of the two (README).

        Returns an AnnData: ``.X`` counterfactual expression, ``layers['factual']``,
        ``layers['reconstructed']`` (same cells, no intervention, same noise) and
        ``layers['delta']`` (their difference: the effect); ``obs`` with the new labels,
        ``factual_<concept>``, ``extrapolated``, ``source_id``, ``sample``;
        ``uns['causcell']`` with the settings, ``switched`` and ``unsupported`` shares.
        Details: README, "Counterfactuals".
        """
        if not self.is_trained:
            raise NotTrainedError("Train the model (or load a trained one) before intervening.")
        adata = self._table(data, table_key)
        x = self._source(adata)
        do = dict(do or {})
        if not do:
            raise ConceptError("Give at least one intervention, e.g. do={'age': '90wk'}.")
        hold = _checks.held(hold, self.concepts, do)
        ab = cf.abduct(self, adata, x)
        desc = sorted(set().union(*(descendants(self.concepts, self.edges, c) for c in do)))
        draws = cf.run(self, ab, do, desc_k=[self.concepts.index(c) for c in desc],
                       donor=donor, hard=hard, propagate=propagate, unseen=unseen,
                       sampler=sampler, steps=steps, n_samples=n_samples,
                       seed=self.seed if seed is None else seed, batch_size=batch_size,
                       progress=progress, hold=hold)
        settings = {"do": {k: str(v) for k, v in do.items()}, "donor": donor, "hard": hard,
                    "propagate": propagate, "hold": list(hold), "sampler": sampler,
                    "steps": steps, "unseen": unseen}
        return cf.assemble(self, adata, x.dense(), ab.y, draws, settings, desc)

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write a self-contained model directory, atomically (:mod:`napari_causcell.io`):
        ``model.pt`` (weights, donor bank, validation cells) and ``causcell.json``
        (settings, history), which carry the same token and each other's checksums.
        ``overwrite=True`` replaces only a model directory (or an empty one)."""
        meta = {"genes": list(self.genes), "concepts": self.concept_space.to_dict(),
                "dag": [list(e) for e in self.edges], "seed": self.seed, "layer": self.layer,
                "log_normalized": self.log_normalized, "table_key": self.table_key,
                "config": self.module.config.to_dict(), "train_params": self.train_params,
                "history": self.history, "is_trained": self.is_trained}
        state = {"module": self.module.state_dict(), "donors": self.donors.state(),
                 "val_names": self.val_names}
        return model_dir.write_model_dir(Path(path), meta, state, overwrite)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, data: Any = None,
             allow_unverified: bool = False) -> CausCell:
        """Load a directory written by :meth:`save`; ``data`` attaches a dataset (to train
        further or as the default data). A missing, truncated, tampered or inconsistent
        directory raises :class:`~napari_causcell.ModelFileError`; data lacking a model gene
        a ``DataError``. A format-1 directory (written before models carried checksums)
        cannot be verified and is refused unless ``allow_unverified=True``."""
        path = Path(path)
        meta, state = model_dir.read_model_dir(path, allow_unverified=allow_unverified)
        try:
            space = ConceptSpace.from_dict(meta["concepts"])
            edges, genes = [tuple(e) for e in meta["dag"]], list(meta["genes"])
            model_dir.check_settings(space, edges, genes, meta["config"])
            config = model_dir.without_retired(dict(meta["config"]), path, meta.get("version"))
            saved = {"space": space, "edges": edges, "genes": genes,
                     "config": ModuleConfig(**config), "meta": meta, "state": state}
            model = cls(data, table_key=meta["table_key"], layer=meta["layer"],
                        log_normalized=meta["log_normalized"], seed=meta["seed"],
                        device=device, _saved=saved)
        except (ModelFileError, DataError, SettingError):  # the file is fine: the call is not
            raise
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as err:
            raise model_dir.bad_settings(path, err) from err
        if data is not None:
            model._source(model._adata)  # genes mismatch fails here, not later
        return model

    def _set_saved(self, saved: dict) -> None:
        """Weights, donors, history and validation cells of a loaded model."""
        meta, state = saved["meta"], saved["state"]
        current = self.module.state_dict()
        weights = dict(state["module"])
        for key, value in current.items():  # state older versions lack: module defaults
            if key not in weights and key.startswith(_NEW_STATE):
                weights[key] = value
        self.module.load_state_dict(weights)
        self.module.eval()
        self.donors = cf.DonorBank(state["donors"])
        self.donors.check(self.concept_space, self.module.config.token_dim)
        self.history, self.train_params = list(meta["history"]), dict(meta["train_params"])
        self.is_trained = meta["is_trained"]
        if not isinstance(self.is_trained, bool):
            raise TypeError(f"is_trained is {self.is_trained!r}, not true/false")
        names = state.get("val_names")
        self.val_names = None if names is None else [str(n) for n in names]
        self.saved_version = meta.get("version")
