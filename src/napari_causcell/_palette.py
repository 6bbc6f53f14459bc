"""Colours of categories (cell types, domains, sections): distinct by category index.

The lists are scanpy's qualitative defaults (``scanpy.plotting.palettes``, BSD-3-Clause):
``default_20`` up to 20 labels, ``default_28`` up to 28, ``default_102`` beyond. The colour
of a label depends only on its position among the labels, never on a hash of its name, so
neighbouring categories never share a hue family (matplotlib's ``tab20`` pairs a colour with
its light twin: Astro and Oligo were both blue).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["DEFAULT_20", "DEFAULT_28", "category_colors", "category_palette", "delta_e",
           "hex_color"]

DEFAULT_20 = (
    "#1f77b4", "#ff7f0e", "#279e68", "#d62728", "#aa40fc", "#8c564b", "#e377c2", "#b5bd61",
    "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2",
    "#dbdb8d", "#9edae5", "#ad494a", "#8c6d31",
)
DEFAULT_28 = (
    "#023fa5", "#7d87b9", "#bec1d4", "#d6bcc0", "#bb7784", "#8e063b", "#4a6fe3", "#8595e1",
    "#b5bbe3", "#e6afb9", "#e07b91", "#d33f6a", "#11c638", "#8dd593", "#c6dec7", "#ead3c6",
    "#f0b98d", "#ef9708", "#0fcfc0", "#9cded6", "#d5eae7", "#f3e1eb", "#f6c4e1", "#f79cd4",
    "#7f7f7f", "#c7c7c7", "#1CE6FF", "#336600",
)


def _hex_list(n: int) -> list[str]:
    if n <= len(DEFAULT_20):
        return list(DEFAULT_20[:n])
    if n <= len(DEFAULT_28):
        return list(DEFAULT_28[:n])
    try:
        from scanpy.plotting.palettes import default_102
    except ImportError:  # scanpy is a dependency; this is only a guard
        default_102 = []
    if n <= len(default_102):
        return list(default_102[:n])
    import matplotlib

    rgba = matplotlib.colormaps["gist_rainbow"](np.linspace(0, 1, n))
    return [hex_color(c) for c in rgba]


def category_colors(n: int) -> np.ndarray:
    """``(n, 4)`` RGBA colours for ``n`` categories, in category order.

    Parameters
    ----------
    n
        Number of categories.

    Returns
    -------
    numpy.ndarray
        One opaque RGBA row (values in ``[0, 1]``) per category.
    """
    from matplotlib.colors import to_rgba

    return np.array([to_rgba(h) for h in _hex_list(int(n))], float).reshape(-1, 4)


def category_palette(labels: Sequence[object]) -> dict[str, np.ndarray]:
    """``{label: RGBA}`` for ``labels`` in the order given (the category order).

    Parameters
    ----------
    labels
        The labels, e.g. a categorical column's categories.

    Returns
    -------
    dict
        Each label (as ``str``) to its RGBA colour.
    """
    labels = [str(lab) for lab in labels]
    return dict(zip(labels, category_colors(len(labels))))


def hex_color(rgba: Sequence[float]) -> str:
    """``"#rrggbb"`` of an RGB(A) colour with values in ``[0, 1]``."""
    return "#%02x%02x%02x" % tuple(int(round(255 * float(c))) for c in list(rgba)[:3])


def _lab(rgb: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (D65) of sRGB colours ``(n, 3)`` in ``[0, 1]``."""
    rgb = np.asarray(rgb, float)[:, :3]
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                  [0.0193, 0.1192, 0.9505]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]),
                     200 * (f[:, 1] - f[:, 2])], axis=1)


def delta_e(a: Sequence[float], b: Sequence[float]) -> float:
    """Perceptual distance (CIE76 Delta E) between two RGB(A) colours in ``[0, 1]``.

    About 2.3 is a just-noticeable difference; colours a reader must tell apart on a
    scatter plot should be 15 or more apart.
    """
    lab = _lab(np.array([list(a)[:3], list(b)[:3]], float))
    return float(np.linalg.norm(lab[0] - lab[1]))
