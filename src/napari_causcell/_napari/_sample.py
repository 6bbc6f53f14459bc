"""File > Open Sample > CausCell > Brain aging."""

from __future__ import annotations

from ._layers import cells_layers


def brain_aging_sample(
    n_cells: int = 6000, n_genes: int = 200, n_mice_per_age: int = 2, seed: int = 0
) -> list[tuple]:
    """The simulated brain-aging tissue as a Points layer of cells coloured by cell type.

    One tissue section per mouse (4, 24 and 90 weeks, ``n_mice_per_age`` mice each) side by
    side; the layer's ``metadata`` carries the SpatialData (``'sdata'``) and its table
    (``'adata'``).
    """
    from ..datasets import brain_aging

    sdata = brain_aging(n_cells=n_cells, n_genes=n_genes, n_mice_per_age=n_mice_per_age,
                        seed=seed)
    return cells_layers(sdata, "table", name="brain_aging cells", color_by="cell_type")


def merfish_brain_aging_sample() -> list[tuple]:
    """The real MERFISH brain-aging data shipped with the package (Sun et al.; MIT licence)
    as a Points layer of cells coloured by cell type.

    One young (3 months) and one old (19 months) mouse section side by side; one mouse per
    age, so mouse and age are confounded. The layer's ``metadata`` carries the SpatialData
    (``'sdata'``), its table (``'adata'``) and the credit (``'credit'``).
    """
    from ..datasets import SUN2024_CREDIT, merfish_brain_aging

    sdata = merfish_brain_aging()
    layers = cells_layers(sdata, "table", name="merfish_brain_aging cells",
                          color_by="cell_type")
    layers[0][1]["metadata"]["credit"] = SUN2024_CREDIT
    return layers
