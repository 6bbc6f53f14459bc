"""File > Open Sample > CausCell > Brain aging."""

from __future__ import annotations

from ._layers import cells_layer_tuple


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
    return [cells_layer_tuple(sdata, "table", name="brain_aging cells", color_by="cell_type")]
