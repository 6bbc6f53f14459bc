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
