"""Pure PyTorch CausCell network (no AnnData)."""

from .diffusion import Denoiser, NoiseSchedule, sample
from .module import CausCellModule, LossOutput, LossWeights, ModuleConfig
from .scm import LinearSCM

__all__ = [
    "CausCellModule", "Denoiser", "LinearSCM", "LossOutput", "LossWeights", "ModuleConfig",
    "NoiseSchedule", "sample",
]
