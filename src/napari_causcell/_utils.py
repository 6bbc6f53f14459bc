"""Small shared helpers: device choice, seeding."""

from __future__ import annotations

import torch


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA, then Apple MPS, then CPU."""
    from .errors import SettingError

    if device is not None and str(device) != "auto":
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError, ValueError) as err:
            raise SettingError(f"device must be 'cpu', 'cuda', 'cuda:N', 'mps' or None "
                               f"(automatic), got {device!r}") from err
        if dev.type not in ("cpu", "cuda", "mps"):
            raise SettingError(f"device must be 'cpu', 'cuda', 'cuda:N', 'mps' or None "
                               f"(automatic), got {device!r}")
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise SettingError("device='cuda' was asked for but CUDA is not available.")
        if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
            raise SettingError(f"device={device!r}: there are only {torch.cuda.device_count()} "
                               "CUDA devices.")
        if dev.type == "mps" and not torch.backends.mps.is_available():
            raise SettingError("device='mps' was asked for but Apple MPS is not available.")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """A seeded generator on ``device`` (CPU generator for MPS, which lacks one)."""
    gen_device = device if device.type == "cuda" else torch.device("cpu")
    g = torch.Generator(device=gen_device)
    g.manual_seed(int(seed))
    return g


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` pointing at the user's line: the frame just outside the outermost
    call into this package (not our file, nor a torch decorator's), whatever the depth."""
    import os
    import sys
    import warnings

    root = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frames, frame = [], sys._getframe(1)
    while frame is not None:
        frames.append(frame.f_code.co_filename)
        frame = frame.f_back
    ours = [i for i, name in enumerate(frames) if name.startswith(root)]
    # stacklevel 1 is this function, 2 its caller (frames[0])
    warnings.warn(message, category, stacklevel=(ours[-1] if ours else 0) + 3)
