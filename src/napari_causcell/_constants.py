"""Defaults shared by the library and its front ends (import-light)."""

# DDIM steps: on STARmap, DDIM-20 matched DDIM-50 and the 1000-step DDPM in per-cell r
# (0.699 / 0.694 / 0.681) in 2.4x less time than DDIM-50 (docs/benchmarks.md).
DEFAULT_STEPS = 20
# noise draws averaged by sampler="mean" (the expected expression E[x | tokens])
MEAN_DRAWS = 8
# generation modes: expected expression, or one sample per cell by DDIM / DDPM
SAMPLERS = ("mean", "ddim", "ddpm")
