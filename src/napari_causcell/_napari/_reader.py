"""Reader: SpatialData ``.zarr`` stores and ``.h5ad`` files as Points layers of cells.

napari-spatialdata, when installed, also reads ``.zarr``; napari then lets the user pick. Our
layers carry the same metadata (``sdata``, ``adata``, ``region_key``, ``instance_key``), so the
CausCell widgets work with layers from either reader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._layers import cells_layers


def _is_spatialdata_zarr(path: Path) -> bool:
    return path.is_dir() and path.suffix == ".zarr" and any(
        (path / name).exists() for name in ("tables", "shapes", "points", "images", "labels")
    )


def get_reader(path: str | list[str]) -> Any:
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    if p.suffix == ".h5ad" and p.is_file():
        return _read_h5ad
    if _is_spatialdata_zarr(p):
        return _read_zarr
    return None


def _read_h5ad(path: str | list[str]) -> list[tuple]:
    import anndata as ad

    path = path[0] if isinstance(path, list) else path
    adata = ad.read_h5ad(path)
    return cells_layers(adata, None, name=Path(path).stem)


def _read_zarr(path: str | list[str]) -> list[tuple]:
    import spatialdata as sd

    from ..data import DataError, coordinates

    path = path[0] if isinstance(path, list) else path
    sdata = sd.read_zarr(path)
    layers = []
    for key, table in sdata.tables.items():
        info = table.uns.get("causcell")
        if isinstance(info, dict) and "do" in info:
            continue  # a CausCell result: shown through the Overlay widget
        try:
            coordinates(sdata, key)
        except (DataError, KeyError, ValueError):
            continue  # a table without cells in space: nothing to draw
        layers.extend(cells_layers(sdata, key, name=f"{Path(path).stem} {key}"))
    return layers
