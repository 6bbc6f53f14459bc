"""Argument checks shared by the API and the front ends: impossible settings fail up front."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import SettingError


def count(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an ``int >= minimum``; floats such as 2.5, bools and strings are refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise SettingError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    if value < minimum:
        raise SettingError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number within the bounds (``*_open``: the bound itself is refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise SettingError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise SettingError(f"{name} must be finite, got {value!r}")
    if low is not None and (v < low or (low_open and v == low)):
        raise SettingError(f"{name} must be {'>' if low_open else '>='} {low:g}, got {v:g}")
    if high is not None and (v > high or (high_open and v == high)):
        raise SettingError(f"{name} must be {'<' if high_open else '<='} {high:g}, got {v:g}")
    return v


_ARCH_COUNTS = ("token_dim", "hidden", "width", "depth", "heads", "n_queries", "n_steps")
_ARCH_SHARES = {"dropout": (0.0, 1.0, True), "u_shuffle": (0.0, 1.0, False)}


def _config_defaults() -> dict[str, Any]:
    """Default value of each :class:`~napari_causcell.model.ModuleConfig` field."""
    import dataclasses

    from .model import ModuleConfig

    return {f.name: f.default for f in dataclasses.fields(ModuleConfig)}


def architecture(kwargs: Mapping[str, Any]) -> None:
    """Architecture options of :class:`~napari_causcell.model.ModuleConfig` that cannot work."""
    for name in _ARCH_COUNTS:
        if name in kwargs:
            count(name, kwargs[name], 2 if name == "n_steps" else 1)
    for name, (low, high, high_open) in _ARCH_SHARES.items():
        if name in kwargs:
            number(name, kwargs[name], low=low, high=high, high_open=high_open)
    if kwargs.get("u_dim") is not None:
        dim = kwargs.get("token_dim", _config_defaults()["token_dim"])
        count("u_dim", kwargs["u_dim"], 1)
        if int(kwargs["u_dim"]) > int(dim):
            raise SettingError(f"u_dim ({kwargs['u_dim']}) must be at most token_dim ({dim})")
    if "t_power" in kwargs:
        number("t_power", kwargs["t_power"], low=0.0, low_open=True)
    if "u_kl" in kwargs:
        number("u_kl", kwargs["u_kl"], low=0.0, low_open=True)
    if "width" in kwargs or "heads" in kwargs:
        defaults = _config_defaults()
        width, heads = (int(kwargs.get(k, defaults.get(k, 1))) for k in ("width", "heads"))
        if width % heads:
            raise SettingError(f"width ({width}) must be a multiple of heads ({heads})")


#: most label combinations u_residual keeps a mean for (one row of genes each)
MAX_LABEL_COMBINATIONS = 100_000


def label_combinations(n_classes: Sequence[int]) -> None:
    """Refuse ``u_residual`` when the concepts have too many label combinations."""
    n = math.prod(int(k) for k in n_classes)
    if n > MAX_LABEL_COMBINATIONS:
        raise SettingError(
            f"u_residual keeps one mean per label combination: {' x '.join(map(str, n_classes))}"
            f" = {n:,} combinations is more than {MAX_LABEL_COMBINATIONS:,}; use fewer or "
            "coarser concepts, or u_dim instead")


def train_args(*, max_epochs: Any, batch_size: Any, lr: Any, weight_decay: Any,
               validation_fraction: Any, patience: Any, max_time: Any, world: int = 1,
               ema: Any = 0.0) -> None:
    """Refuse training settings that cannot give a trained model."""
    count("max_epochs", max_epochs, 1)
    # a step needs two cells per process (smaller batches are skipped)
    count("batch_size", batch_size, 2 * world)
    number("lr", lr, low=0.0, low_open=True)
    number("weight_decay", weight_decay, low=0.0)
    number("validation_fraction", validation_fraction, low=0.0, high=1.0, high_open=True)
    count("patience", patience, 1)
    if max_time is not None:
        number("max_time", max_time, low=0.0)
    number("ema", ema, low=0.0, high=1.0, high_open=True)


def loss_weights(weights: Any):
    """``weights`` as :class:`~napari_causcell.model.LossWeights`: known names, finite, >= 0."""
    import dataclasses

    from .model import LossWeights

    if isinstance(weights, LossWeights):
        weights = {f.name: getattr(weights, f.name) for f in dataclasses.fields(LossWeights)
                   if f.name != "extra"}
    if weights is not None and not isinstance(weights, Mapping):
        raise SettingError(f"weights must be a mapping of loss names to numbers, got "
                           f"{type(weights).__name__}")
    names = [f.name for f in dataclasses.fields(LossWeights) if f.name != "extra"]
    for key, value in dict(weights or {}).items():
        if key not in names:
            raise SettingError(f"weights: unknown loss {key!r}; the losses are "
                               f"{', '.join(names)}")
        number(f"weights[{key!r}]", value, low=0.0)
    return LossWeights(**dict(weights or {}))


def choice(name: str, value: Any, options: Sequence[str]) -> str:
    """``value`` if it is one of ``options``, else a :class:`SettingError`."""
    if not isinstance(value, str) or value not in options:
        raise SettingError(f"{name} must be one of {', '.join(map(repr, options))}, got "
                           f"{value!r}")
    return value


def sampling(kwargs: Mapping[str, Any]) -> None:
    """Sampler settings of ``reconstruct`` / ``counterfactual`` that cannot work."""
    from ._constants import SAMPLERS

    sampler = choice("sampler", kwargs.get("sampler", "mean"), SAMPLERS)
    for name in ("n_samples", "steps", "batch_size"):
        if name in kwargs and (name != "steps" or sampler == "ddim"):
            count(name, kwargs[name], 1)
    if kwargs.get("seed") is not None:
        count("seed", kwargs["seed"], 0)
    for name, options in (("donor", ("random", "mean")), ("propagate", ("labels", "tokens")),
                          ("unseen", ("average", "decoder", "blend"))):
        if name in kwargs:
            choice(name, kwargs[name], options)


def held(hold, concepts: Sequence[str], do: Mapping[str, Any]) -> tuple[str, ...]:
    """``hold`` of ``counterfactual`` as a tuple of concepts, neither unknown nor intervened."""
    from .errors import ConceptError

    names = (hold,) if isinstance(hold, str) else tuple(hold or ())
    for name in names:
        if name not in concepts:
            raise ConceptError(f"hold names {name!r}, not a concept of the model "
                               f"({', '.join(concepts)}).")
        if name in do:
            raise ConceptError(f"{name!r} is both intervened on and held: choose one.")
    return tuple(dict.fromkeys(names))
