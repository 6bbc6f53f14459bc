"""Known markers on real data: the predicted counterfactual change beside the observed one.

:func:`marker_table` is what the demo's real-data part (``napari-causcell demo``) reports for
the shipped MERFISH brain-aging data, where no true counterfactual exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from ..data import expression, is_spatialdata, resolve_table
from ..errors import DataError
from ._utils import dense32

__all__ = ["marker_table"]


def marker_table(
    data: Any,
    cf: ad.AnnData,
    markers: pd.DataFrame,
    *,
    concept: str = "age",
    type_key: str = "cell_type",
    domain_key: str | None = "domain",
    table_key: str | None = None,
    min_cells: int = 10,
) -> dict[str, Any]:
    """Predicted counterfactual change of known markers beside the observed difference.

    For each marker (``gene``, ``cell_type``; optional ``programme``, ``direction``) of
    ``markers``: ``predicted`` is the mean over the intervened cells of that (factual) type
    of the paired change ``cf.layers['delta']`` (samples of a cell averaged first);
    ``observed`` is the mean log-normalised expression (over the counterfactual's genes, the
    model's space) of the type's cells carrying the intervention's labels minus that of the
    intervened cells (for ``do(age=old)`` on the young cells: old minus young). Markers whose
    gene is not in the counterfactual or whose type has fewer than ``min_cells`` intervened
    cells are listed in ``skipped``.

    With ``domain_key``, ``by_domain`` repeats both per domain (region): ``predicted`` for
    every domain with ``min_cells`` intervened cells of the type, ``observed`` only where the
    target cells of the type also number ``min_cells`` there (else ``None``); and each marker
    gets ``observed_region_matched``, those per-domain observed differences averaged with the
    intervened cells' counts as weights (the observed difference at the intervened cells'
    region mix, ``None`` where no domain has both), and ``region_matched_share``, the share of
    the intervened cells of the type in the domains it covers.

    Returns
    -------
    dict
        ``markers`` (records: ``gene``, ``cell_type``, ``programme``, ``expected``,
        ``n_source``, ``n_target``, ``predicted``, ``observed``, ``agrees_observed``,
        ``agrees_expected``, with domains also ``observed_region_matched`` and
        ``region_matched_share``), ``by_domain`` (records: ``gene``, ``cell_type``, ``domain``,
        ``n_source``, ``n_target``, ``predicted``, ``observed``), ``skipped``,
        ``n_agree_observed``, ``n_agree_expected``, ``n``.
    """
    table = resolve_table(data, table_key)[0] if is_spatialdata(data) else data
    cells = _Cells.of(table, cf, concept, type_key, domain_key)
    rows, by_domain, skipped = [], [], []
    for rec in markers.to_dict("records"):
        gene, t = str(rec["gene"]), str(rec["cell_type"])
        sel = cells.src_type == t
        if gene not in cells.genes or sel.sum() < min_cells:
            skipped.append({"gene": gene, "cell_type": t, "reason": "gene not in the model"
                            if gene not in cells.genes
                            else f"{int(sel.sum())} intervened cells (< {min_cells})"})
            continue
        rows.append(cells.row(rec, gene, t, sel))
        if cells.dom is not None:
            by_domain += cells.domains(rows[-1], sel, min_cells)
    return {
        "markers": rows, "by_domain": by_domain, "skipped": skipped, "n": len(rows),
        "n_agree_observed": sum(bool(r["agrees_observed"]) for r in rows),
        "n_agree_expected": sum(bool(r["agrees_expected"]) for r in rows),
    }


@dataclass
class _Cells:
    """What :func:`marker_table` compares: the counterfactual's predicted change per
    intervened cell and the log-normalised expression, types and domains of all cells."""

    genes: list[str]
    pred_x: np.ndarray  # predicted change, one row per intervened cell (samples averaged)
    x: np.ndarray  # log-normalised expression of all cells over ``genes``
    source: np.ndarray  # the intervened cells
    target: np.ndarray  # the other cells carrying the intervention's labels
    ctype: np.ndarray
    dom: np.ndarray | None
    src_type: np.ndarray
    src_dom: np.ndarray | None

    @classmethod
    def of(cls, table: ad.AnnData, cf: ad.AnnData, concept: str, type_key: str,
           domain_key: str | None) -> _Cells:
        do = {str(k): str(v) for k, v in cf.uns.get("causcell", {}).get("do", {}).items()}
        if concept not in do:
            raise DataError(f"The counterfactual does not set {concept!r} (do = {do}).")
        if "source_id" not in cf.obs or "delta" not in cf.layers:
            raise DataError("The counterfactual needs obs['source_id'] and layers['delta'].")
        genes = [str(g) for g in cf.var_names]
        ids = cf.obs["source_id"].astype(str).to_numpy()
        pred = pd.DataFrame(dense32(cf.layers["delta"]), columns=genes).groupby(ids).mean()
        pos = table.obs_names.get_indexer(pred.index)
        if (pos < 0).any():
            raise DataError("Some counterfactual cells (obs['source_id']) are not in the data.")
        source = np.zeros(table.n_obs, dtype=bool)
        source[pos] = True
        target = np.ones(table.n_obs, dtype=bool)
        for key, value in do.items():
            target &= table.obs[key].astype(str).to_numpy() == value
        ctype = table.obs[type_key].astype(str).to_numpy()
        dom = (table.obs[domain_key].astype(str).to_numpy()
               if domain_key and domain_key in table.obs else None)
        return cls(genes, pred.to_numpy(), expression(table, genes).toarray(), source,
                   target & ~source, ctype, dom, ctype[pos],
                   dom[pos] if dom is not None else None)

    def row(self, rec: dict, gene: str, t: str, sel: np.ndarray) -> dict[str, Any]:
        """One marker's record: predicted vs observed change and the signs' agreement."""
        expected = str(rec.get("direction", "")) or None
        j = self.genes.index(gene)
        tgt = self.target & (self.ctype == t)
        p = float(self.pred_x[sel, j].mean())
        o = (float(self.x[tgt, j].mean() - self.x[self.source & (self.ctype == t), j].mean())
             if tgt.any() else None)
        want = {"up": 1.0, "down": -1.0}.get(expected or "")
        return {
            "gene": gene, "cell_type": t, "programme": rec.get("programme"),
            "expected": expected, "n_source": int(sel.sum()), "n_target": int(tgt.sum()),
            "predicted": p, "observed": o,
            "agrees_observed": None if o is None else bool(np.sign(p) == np.sign(o)),
            "agrees_expected": None if want is None else bool(np.sign(p) == want),
        }

    def domains(self, row: dict[str, Any], sel: np.ndarray, min_cells: int) -> list[dict]:
        """``row``'s per-domain records; adds its region-matched observed change to ``row``."""
        gene, t = row["gene"], row["cell_type"]
        j = self.genes.index(gene)
        tgt = self.target & (self.ctype == t)
        out, matched, weights = [], [], []
        for d in sorted(set(self.src_dom[sel])):
            ds = sel & (self.src_dom == d)
            if ds.sum() < min_cells:
                continue
            dt = tgt & (self.dom == d)
            ss = self.source & (self.ctype == t) & (self.dom == d)
            o_d = (float(self.x[dt, j].mean() - self.x[ss, j].mean())
                   if dt.sum() >= min_cells else None)
            out.append({"gene": gene, "cell_type": t, "domain": d, "n_source": int(ds.sum()),
                        "n_target": int(dt.sum()), "predicted": float(self.pred_x[ds, j].mean()),
                        "observed": o_d})
            if o_d is not None:
                matched.append(o_d)
                weights.append(int(ds.sum()))
        # the observed difference within regions, weighted by the intervened cells' regions
        # (a direct comparison with the counterfactual's composition, where both ages have cells)
        row["observed_region_matched"] = (float(np.average(matched, weights=weights))
                                          if matched else None)
        row["region_matched_share"] = float(sum(weights) / sel.sum())
        return out
