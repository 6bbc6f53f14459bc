"""Every key napari-causcell writes into AnnData / SpatialData / napari layers, named once.

In the manner of squidpy's ``Key`` registry: code that writes or reads one of these keys
uses the name here instead of repeating the string, so a key is changed in one place and a
reader can see at a glance what the package adds to a user's object.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["Key"]


class Key:
    """The names napari-causcell writes (class attributes; nothing to instantiate)."""

    class obsm:  # noqa: N801 - mirrors the AnnData attribute
        #: tissue coordinates ``(n_cells, 2)`` (read; written by ``tl.spatial_domains`` when
        #: a SpatialData table had none)
        SPATIAL = "spatial"

        @staticmethod
        def embedding(token: str) -> str:
            """``CausCell.concept_embeddings``' key of one token (a concept or ``u``)."""
            return f"X_causcell_{token}"

    class obs:  # noqa: N801
        #: default column of ``tl.spatial_domains``
        DOMAIN = "domain"
        #: the front ends' domain column when ``domain`` already exists
        DOMAIN_FALLBACK = "causcell_domain"
        #: in a counterfactual table: the obs name of the cell it was generated from
        SOURCE_ID = "source_id"
        #: in a counterfactual table: which of the ``n_samples`` draws a row is
        SAMPLE = "sample"
        #: in a counterfactual table: the change was transported from measured labels
        #: (``unseen="average"``)
        EXTRAPOLATED = "extrapolated"

        @staticmethod
        def factual(concept: str) -> str:
            """Column of a counterfactual table with a descendant's factual label."""
            return f"factual_{concept}"

        @staticmethod
        def predicted(concept: str) -> str:
            """Column of a counterfactual table with the model's prediction of ``concept``."""
            return f"{concept}_predicted"

    class layers:  # noqa: N801
        #: counterfactual minus factual (log-normalised), per cell and gene
        DELTA = "delta"
        #: the factual (observed, log-normalised) expression beside the counterfactual
        FACTUAL = "factual"
        #: the same cells generated without intervention (same noise)
        RECONSTRUCTED = "reconstructed"

    class uns:  # noqa: N801
        #: counterfactual parameters (``do``, sampler, ...) in a counterfactual table; on an
        #: AnnData also the dict of counterfactual results by key
        CAUSCELL = "causcell"
        #: the last ``tl.age_trends`` result
        TRENDS = "causcell_trends"
        #: the SpatialData table annotation (``region``, ``region_key``, ``instance_key``)
        SPATIALDATA_ATTRS = "spatialdata_attrs"

    class table:  # noqa: N801
        #: prefix of every counterfactual table (SpatialData) / result key (AnnData)
        PREFIX = "causcell_"

        @staticmethod
        def slug(text: str) -> str:
            """``text`` with every run of other characters than letters and digits as ``_``."""
            return re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_")

        @classmethod
        def counterfactual(cls, do: Mapping[str, Any], cells: str = "") -> str:
            """``causcell_<concept>_<value>[_<cells>]`` (not yet made unique)."""
            base = cls.PREFIX + cls.slug("_".join(f"{k}_{v}" for k, v in do.items()))
            return base + ("_" + cls.slug(cells)[:40] if cells else "")

    class layer_meta:  # noqa: N801 - napari layer metadata
        #: flag of the overlay Points layers ("A" or "B")
        OVERLAY = "causcell_overlay"
        #: the obs column a cells layer is coloured by
        COLOR_BY = "causcell_color_by"
        #: the application state an overlay layer belongs to
        STATE = "causcell_session"
