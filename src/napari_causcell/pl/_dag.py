"""``pl.dag``: the drawing itself lives in :mod:`napari_causcell._dagplot` (matplotlib and
networkx only), so that ``tl.DagSuggestion.plot`` can draw without ``tl`` importing ``pl``."""

from .._dagplot import STATUS_COLORS, dag

__all__ = ["STATUS_COLORS", "dag"]
