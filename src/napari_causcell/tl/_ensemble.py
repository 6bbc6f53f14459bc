"""An ensemble over training seeds, and the delete-one-donor jackknife models."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..data import resolve_table
from ..errors import DataError, NotTrainedError, SettingError
from ._trend_common import check_columns


def train_ensemble(
    data: Any, concepts: Sequence[str], dag: Any = None, *, n_models: int = 5, seed: int = 0,
    max_epochs: int = 200, max_time: float | None = None,
    progress: Callable[[float], Any] | None = None, train_kwargs: dict | None = None,
    jackknife: str | None = None, stratum: str = "age", **model_kwargs: Any,
) -> list[Any]:
    """Train ``n_models`` CausCell models on the same data, with seeds ``seed`` to ``seed + n_models - 1``.

    The ensemble :func:`age_trends` takes to measure model uncertainty: what differs between
    the models is only the training randomness (initialisation, batches, validation split),
    so the spread of their effects is the part of the answer that depends on chance in
    training.

    Parameters
    ----------
    data, concepts, dag, **model_kwargs
        As :class:`~napari_causcell.CausCell` (``seed`` is set per model).
    n_models
        Models to train on all cells (>= 2 for a model-uncertainty term; 0 with
        ``jackknife`` trains only the jackknife models, to add to an ensemble trained before).
    seed
        Seed of the first model.
    max_epochs, max_time, train_kwargs
        Passed to :meth:`CausCell.train` for every model (``max_time`` per model).
    progress
        Called as ``progress(fraction)`` after each model.
    jackknife
        Donor column (e.g. ``"mouse"``): also train one model per donor with that donor's
        cells left out (seed ``seed``), for the delete-one-donor jackknife that
        :func:`age_trends` then uses to measure donor sampling on the model itself. Each
        level of ``stratum`` needs >= 2 donors, each donor one level. Costs one training per
        donor more.
    stratum
        The concept the donors are nested in (default ``"age"``).

    Returns
    -------
    list of CausCell
        The ``n_models`` models on all cells, then the jackknife models (each records its
        left-out donor in ``train_params['left_out']``, kept by ``save``/``load``).
    """
    if int(n_models) < (0 if jackknife is not None else 1):
        raise SettingError(f"n_models must be >= 1 (>= 0 with jackknife), got {n_models}")
    runs = [(None, int(seed) + i) for i in range(int(n_models))]
    if jackknife is not None:
        runs += [(d, int(seed)) for d in _jackknife_donors(data, jackknife, stratum)]
    fit = (max_epochs, max_time, train_kwargs or {})
    models = []
    for i, (dropped, s) in enumerate(runs):
        models.append(_train_one(data, concepts, dag, s, dropped, jackknife, stratum, fit,
                                 model_kwargs))
        if progress is not None:
            progress((i + 1) / len(runs))
    return models


def _train_one(data: Any, concepts: Sequence[str], dag: Any, seed: int,
               dropped: tuple[str, str] | None, donor_key: str | None, stratum: str,
               fit: tuple[int, float | None, dict], model_kwargs: dict) -> Any:
    """One model of the ensemble: on all cells, or without the ``dropped`` (level, donor);
    ``fit`` is ``(max_epochs, max_time, train_kwargs)``."""
    from .._model import CausCell

    sub = data if dropped is None else _without_donor(data, donor_key, dropped[1])
    model = CausCell(sub, concepts, dag, seed=seed, **model_kwargs)
    max_epochs, max_time, train_kwargs = fit
    model.train(max_epochs, max_time=max_time, **train_kwargs)
    if dropped is not None:
        model.train_params["left_out"] = {"donor_key": donor_key, "donor": dropped[1],
                                          "stratum_key": stratum, "stratum": dropped[0]}
    return model


def left_out(model: Any) -> dict | None:
    """The donor a jackknife model was trained without (``None``: all donors)."""
    return (getattr(model, "train_params", None) or {}).get("left_out")


def as_models(model: Any) -> list[Any]:
    """One model or an ensemble, checked: trained, same concepts and genes."""
    models = list(model) if isinstance(model, (list, tuple)) else [model]
    if not models:
        raise SettingError("Give at least one model.")
    for m in models:
        if not getattr(m, "is_trained", False):
            raise NotTrainedError("Train the model (or load a trained one) before computing "
                               "trends.")
    first = models[0]
    for m in models[1:]:
        if list(m.concepts) != list(first.concepts) or list(m.genes) != list(first.genes):
            raise DataError("The models of an ensemble need the same concepts and genes "
                             "(train them on the same data with different seeds).")
    return models


def _jackknife_donors(data: Any, donor_key: str, stratum: str) -> list[tuple[str, str]]:
    """``(stratum level, donor)`` for every donor; each level needs >= 2 donors."""
    table, _ = resolve_table(data, None)
    check_columns(table, [donor_key, stratum], "Jackknife")
    pairs = table.obs[[stratum, donor_key]].astype(str).drop_duplicates()
    nested = pairs.groupby(donor_key)[stratum].nunique()
    if (nested > 1).any():
        raise DataError(f"Donors {list(nested.index[nested > 1])[:3]} have several "
                        f"{stratum} levels; the jackknife needs donors nested in {stratum}.")
    per = pairs.groupby(stratum)[donor_key].nunique()
    if (per < 2).any():
        raise DataError(f"{stratum} level(s) {list(per.index[per < 2])} have one donor: the "
                        "jackknife needs >= 2 donors per level (with one, donor and "
                        f"{stratum} cannot be told apart).")
    return sorted(map(tuple, pairs[[stratum, donor_key]].to_numpy()))


def _without_donor(data: Any, donor_key: str, donor: str) -> Any:
    """The table's cells of every donor but ``donor`` (a copy)."""
    table, _ = resolve_table(data, None)
    return table[(table.obs[donor_key].astype(str) != donor).to_numpy()].copy()
