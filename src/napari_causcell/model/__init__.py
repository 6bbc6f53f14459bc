"""Pure PyTorch CausCell network (no AnnData)."""

from .diffusion import Denoiser, NoiseSchedule, sample
from .module import CausCellModule, LossOutput, LossWeights, ModuleConfig
from .noise import CellNoise, cell_keys
from .scm import LinearSCM

__all__ = [
    "CausCellModule", "CellNoise", "Denoiser", "LinearSCM", "LossOutput", "LossWeights",
    "ModuleConfig", "NoiseSchedule", "cell_keys", "sample",
]
