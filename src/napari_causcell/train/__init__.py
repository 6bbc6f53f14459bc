"""Training on Lightning: data, training plan, callbacks and the runner behind
:meth:`napari_causcell.CausCell.train` (the scvi-tools shape: ``train`` wires data ->
plan -> runner)."""

from ._progress import MONITOR, SELECT_LABELS, TrainProgress, validation_loss

__all__ = ["MONITOR", "SELECT_LABELS", "TrainProgress", "validation_loss"]
