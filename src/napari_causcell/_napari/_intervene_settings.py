"""The Intervene widget's generation settings, a magicgui form (psygnal-evented widgets)."""

from __future__ import annotations

from typing import Any

from magicgui.widgets import ComboBox, Container, SpinBox

from .._constants import DEFAULT_STEPS
from ..app.intervene import DONORS, SAMPLERS

__all__ = ["MAX_STEPS", "GenerationSettings"]

#: the diffusion schedule's length: DDIM visits at most this many steps
MAX_STEPS = 1000


class GenerationSettings(Container):
    """Sampler, steps, seed and donor token of a counterfactual; ``changed`` (psygnal) fires
    on any edit. Shared by the intervention and the Trends section.

    Each value widget is an attribute (``sampler``, ``steps``, ``seed``, ``donor``):
    ``settings.steps.value = 7`` sets it as a user would; the spin boxes hold only valid
    values (``steps`` 1..1000, ``seed`` 0..2**31 - 1).
    """

    def __init__(self) -> None:
        self.sampler = ComboBox(choices=list(SAMPLERS), value="mean", label="Sampler",
                                tooltip="mean: each cell's expected expression (smooth, what "
                                        "the effect estimates use); ddim, ddpm: one sample "
                                        "per cell")
        self.steps = SpinBox(value=DEFAULT_STEPS, min=1, max=MAX_STEPS, label="Steps",
                             tooltip="Denoising steps of the ddim sampler (ddpm takes all "
                                     f"{MAX_STEPS}; mean takes none)")
        self.seed = SpinBox(value=0, min=0, max=2**31 - 1, label="Seed",
                            tooltip="The same seed draws the same noise for each cell")
        self.donor = ComboBox(choices=list(DONORS), value="random", label="Donor token",
                              tooltip="random: a training cell with the target label; "
                                      "mean: the label's mean token")
        super().__init__(widgets=[self.sampler, self.steps, self.seed, self.donor],
                         labels=True)
        self.margins = (0, 0, 0, 0)

    def sampling(self) -> dict[str, Any]:
        """The values as keyword arguments of
        :class:`~napari_causcell.app.intervene.InterveneRequest` (and ``TrendsRequest``)."""
        return dict(sampler=str(self.sampler.value), steps=int(self.steps.value),
                    seed=int(self.seed.value), donor=str(self.donor.value))
