"""Real MERFISH mouse brain aging (Sun et al., spatial aging clocks), shipped with the package.

4,788 cells x 200 genes of coronal brain sections of one young (3 months, mouse ``YC1``) and
one old (19 months, ``OC1``) mouse: the example subset of the PyPI package
``spatial-aging-clock`` 0.0.2 (MIT licence, copyright 2024 Eric David Sun; see
``data/LICENSE_merfish_brain_aging_sun2024.txt``). Read from the package, offline.

What it can and cannot show: there is **one mouse per age**, so mouse and age are confounded
(any difference between the two animals counts as "age"), and the two sections cover different
anatomy (e.g. striatum STR_CP/ACB 1,393 young vs 57 old cells, cortex CTX_L2/3 157 vs 740), so
region and cell-type composition differ between the ages too. Compare within region and cell
type; no test on these data can separate age from the individual mouse.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

if TYPE_CHECKING:
    from spatialdata import SpatialData

__all__ = ["merfish_brain_aging", "merfish_brain_aging_path", "SUN2024_CELL_TYPES",
           "SUN2024_CREDIT", "SUN2024_AGE_MARKERS", "SUN2024_LITERATURE_MARKERS"]

_FILE = "merfish_brain_aging_sun2024.h5ad"
_LICENSE = "LICENSE_merfish_brain_aging_sun2024.txt"
_TABLE = "table"
_REGION = "cells"
_CELL_RADIUS = 5.0  # µm, drawing size only
_GAP = 100.0  # µm between the two sections laid side by side

#: Source cell-type labels -> the short names used across the package (``Oligo``, ``Astro``...).
SUN2024_CELL_TYPES: dict[str, str] = {
    "Astrocyte": "Astro", "Oligodendrocyte": "Oligo", "Neuron-Inhibitory": "InN",
    "Neuron-Excitatory": "ExN", "Neuron-MSN": "MSN", "Ependymal": "Ependymal",
    "Endothelial": "Endo", "Microglia": "Microglia", "OPC": "OPC", "NSC": "NSC",
    "Neuroblast": "Neuroblast", "Pericyte": "Peri", "VLMC": "VLMC", "VSMC": "VSMC",
    "Macrophage": "Macrophage",
}

#: One-line credit to show wherever the data are shown.
SUN2024_CREDIT = ("MERFISH mouse brain aging: Sun et al., spatial aging clocks "
                  "(spatial-aging-clock 0.0.2 example data, MIT licence, (c) 2024 Eric David Sun)")

#: Known ageing signals visible in these data (old minus young, cell type): C4b up in
#: oligodendrocytes, Gfap up in astrocytes, B2m and H2-K1 up in microglia (complement,
#: astrocyte reactivity and MHC-I genes that rise with age in the mouse brain).
SUN2024_AGE_MARKERS: pd.DataFrame = pd.DataFrame(
    [("C4b", "Oligo", "up"), ("Gfap", "Astro", "up"), ("B2m", "Microglia", "up"),
     ("H2-K1", "Microglia", "up")],
    columns=["gene", "cell_type", "direction"],
)


#: Ageing genes from the mouse-brain ageing literature that are in this 200-gene panel, with the
#: cell type they are reported in (all reported up with age): the four
#: :data:`SUN2024_AGE_MARKERS` plus complement (C4b in astrocytes, C3 in reactive astrocytes,
#: C1qa in microglia), disease-/age-associated microglia (Lyz2, Cd9), interferon response
#: (Bst2 in microglia, Ifi27 and Ifitm3 in endothelial cells) and MHC-I (B2m in endothelial
#: cells). Chosen from the literature before looking at these data: some (C3, Cd9) do not
#: change between the two mice here. ``programme`` names the biology, ``direction`` the
#: reported sign. (Il33, Cd74, H2-D1 and C1qb/c are not in the panel.)
SUN2024_LITERATURE_MARKERS: pd.DataFrame = pd.DataFrame(
    [("C4b", "Oligo", "complement"), ("C4b", "Astro", "complement"),
     ("Gfap", "Astro", "reactive astrocytes"), ("C3", "Astro", "complement"),
     ("B2m", "Microglia", "MHC-I"), ("H2-K1", "Microglia", "MHC-I"),
     ("C1qa", "Microglia", "complement"), ("Lyz2", "Microglia", "age-associated microglia"),
     ("Cd9", "Microglia", "age-associated microglia"), ("Bst2", "Microglia", "interferon"),
     ("B2m", "Endo", "MHC-I"), ("Ifi27", "Endo", "interferon"), ("Ifitm3", "Endo", "interferon")],
    columns=["gene", "cell_type", "programme"],
).assign(direction="up")


def merfish_brain_aging_path() -> Path:
    """Path of the shipped ``.h5ad`` (inside the installed package)."""
    return Path(str(resources.files("napari_causcell.datasets") / "data" / _FILE))


def _table() -> ad.AnnData:
    path = merfish_brain_aging_path()
    if not path.is_file():  # a broken install, not a user error
        raise FileNotFoundError(f"The built-in MERFISH data file is missing: {path}. "
                                "Reinstall napari-causcell.")
    raw = ad.read_h5ad(path)
    src = raw.obs
    obs = pd.DataFrame(index=pd.Index(src.index.astype(str)))
    obs["age"] = pd.Categorical(src["age_group"].astype(str), categories=["young", "old"],
                                ordered=True)
    obs["age_months"] = src["age_months"].to_numpy(float)
    obs["mouse"] = pd.Categorical(src["mouse_id"].astype(str), categories=["YC1", "OC1"])
    obs["donor"] = obs["mouse"].copy()
    obs["cohort"] = pd.Categorical(src["cohort"].astype(str))
    original = src["celltype"].astype(str)
    names = original.map(SUN2024_CELL_TYPES).fillna(original)
    obs["cell_type"] = pd.Categorical(names, categories=[
        v for v in SUN2024_CELL_TYPES.values() if v in set(names)])
    obs["cell_type_original"] = pd.Categorical(original)
    obs["domain"] = pd.Categorical(src["region"].astype(str))
    obs["brain_region"] = obs["domain"].copy()
    for col in ("implied_volume", "total_counts", "n_genes"):
        obs[col] = src[col].to_numpy()
    obs["region"] = pd.Categorical([_REGION] * len(obs))
    obs["cell_id"] = np.arange(len(obs))

    counts = sp.csr_matrix(raw.X, dtype=np.float32)
    adata = ad.AnnData(X=counts, obs=obs, var=pd.DataFrame(index=raw.var_names.astype(str)))
    adata.layers["counts"] = counts.copy()
    adata.layers["volume_normalized"] = sp.csr_matrix(raw.layers["volume_normalized"])
    # both mice were imaged over the same window: lay the old section beside the young one
    xy = np.asarray(raw.obsm["spatial"], dtype=float)[:, :2]
    adata.obsm["spatial_original"] = xy.copy()
    young = obs["mouse"].to_numpy() == "YC1"
    shift = xy[young, 0].max() - xy[~young, 0].min() + _GAP
    xy = xy.copy()
    xy[~young, 0] += shift
    adata.obsm["spatial"] = xy
    adata.uns["merfish_brain_aging"] = {
        "source": dict(raw.uns.get("source", {})),
        "credit": SUN2024_CREDIT,
        "license": "MIT (Copyright (c) 2024 Eric David Sun)",
        "caveats": ("One mouse per age: mouse and age are confounded. The two sections cover "
                    "different anatomy, so region and cell-type mix differ by age."),
        "old_section_shift_x": float(shift),
    }
    return adata


def merfish_brain_aging(as_anndata: bool = False) -> SpatialData | ad.AnnData:
    """Real MERFISH mouse brain aging data (Sun et al.), shipped with the package (offline).

    4,788 cells x 200 genes of one young (3 months, mouse ``YC1``, 2,411 cells) and one old
    (19 months, ``OC1``, 2,377 cells) mouse brain coronal section; 15 cell types, 6 annotated
    regions. Source: the example subset of ``spatial-aging-clock`` 0.0.2 (MIT licence,
    copyright 2024 Eric David Sun); see :data:`SUN2024_CREDIT`.

    **Caveats**: one mouse per age, so mouse and age are confounded (no statistic can separate
    them); the two sections cover different anatomy (e.g. STR_CP/ACB 1,393 young vs 57 old
    cells), so region and cell-type composition differ by age too.

    Parameters
    ----------
    as_anndata
        Return only the table (AnnData) instead of a SpatialData.

    Returns
    -------
    spatialdata.SpatialData
        Table ``"table"`` annotating the circle shapes ``"cells"`` (radius 5 µm, index
        ``cell_id``). The table: raw integer counts in ``.X`` and ``layers['counts']`` (CSR
        float32), the source's volume-normalised values in ``layers['volume_normalized']``;
        obs ``age`` (ordered ``young`` < ``old``), ``age_months`` (3, 19), ``mouse`` and
        ``donor`` (``YC1``, ``OC1``), ``cell_type`` (short names, :data:`SUN2024_CELL_TYPES`;
        the source label in ``cell_type_original``), ``domain`` (the annotated brain region,
        also in ``brain_region``), ``region`` / ``cell_id`` (the SpatialData annotation keys);
        ``obsm['spatial']`` in µm with the old section shifted to the right of the young one
        (the source coordinates, which overlap, in ``obsm['spatial_original']``);
        ``uns['merfish_brain_aging']`` source, credit, licence and caveats.
    """
    adata = _table()
    if as_anndata:
        return adata
    from spatialdata import SpatialData
    from spatialdata.models import ShapesModel, TableModel

    table = TableModel.parse(adata, region=_REGION, region_key="region", instance_key="cell_id")
    shapes = ShapesModel.parse(adata.obsm["spatial"], geometry=0, radius=_CELL_RADIUS,
                               index=adata.obs["cell_id"].to_numpy())
    return SpatialData(shapes={_REGION: shapes}, tables={_TABLE: table})
