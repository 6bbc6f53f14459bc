"""The counterfactual engine behind :meth:`napari_causcell.CausCell.counterfactual`.

Pearl's three steps as separate functions, plus the transport of effects to label
combinations never seen in training: :func:`abduct` (the cells' exogenous tokens and labels),
:func:`act` (``do()``: new labels through the label SCM, donor tokens), :func:`predict`
(expression generated from tokens) and :func:`transport`. :class:`DonorBank` holds training
cells' tokens per label; :mod:`._output` assembles the AnnData. Every random choice
comes from the cell's own stream (:func:`noise_for`, keyed by its obs name).
"""

from ..model.noise import cell_keys
from ._donors import DONOR_BANK, DonorBank
from ._engine import (SAMPLER, Abduction, Action, abduct, act, encode, exogenous, noise_for,
                      predict, run, transport)
from ._output import assemble, share

__all__ = ["DONOR_BANK", "SAMPLER", "Abduction", "Action", "DonorBank", "abduct", "act",
           "assemble", "cell_keys", "encode", "exogenous", "noise_for", "predict", "run",
           "share", "transport"]
