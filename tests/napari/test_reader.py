"""Reader and sample layers (no Qt needed)."""

from __future__ import annotations

import numpy as np

from napari_causcell._napari._layers import layer_rows, session_for
from napari_causcell._napari._reader import get_reader
from napari_causcell._napari._sample import brain_aging_sample, merfish_brain_aging_sample
from napari_causcell.datasets import brain_aging


class _Layer:  # the bits of a napari layer the helpers use
    def __init__(self, data, kwargs):
        self.data, self.metadata, self.name = data, kwargs["metadata"], kwargs["name"]


def test_sample_layer_metadata():
    (data, kwargs, kind), *text = brain_aging_sample(n_cells=300, n_mice_per_age=1)
    assert [t[1]["name"] for t in text] == ["CausCell sections", "CausCell legend"]
    meta = kwargs["metadata"]
    assert kind == "points" and data.shape == (300, 2)
    assert meta["adata"] is meta["sdata"].tables["table"]
    assert meta["table_names"] == ["table"] and meta["name"] == "cells"
    layer = _Layer(data, kwargs)
    s = session_for(layer)
    assert session_for(layer) is s  # one shared session per dataset
    np.testing.assert_array_equal(layer_rows(layer, s), np.arange(300))
    # a napari-spatialdata style layer listing a subset of instances, shuffled
    sub = _Layer(data[[5, 2, 9]], {"metadata": {**meta, "indices": [5, 2, 9]}, "name": "x"})
    np.testing.assert_array_equal(layer_rows(sub, s), [5, 2, 9])


def test_reader_zarr_and_h5ad(tmp_path):
    sdata = brain_aging(n_cells=200, n_genes=60, n_mice_per_age=1)
    zarr = tmp_path / "tissue.zarr"
    sdata.write(zarr)
    layers = get_reader(str(zarr))(str(zarr))
    assert [kw["name"] for _, kw, _ in layers] == ["tissue table", "CausCell sections",
                                                   "CausCell legend"]
    data, kwargs, kind = layers[0]
    assert kind == "points" and data.shape == (200, 2)
    assert set(kwargs["metadata"]["sdata"].tables) == {"table"}
    h5ad = tmp_path / "cells.h5ad"
    sdata.tables["table"].write_h5ad(h5ad)
    (data, kwargs, kind), *_ = get_reader(str(h5ad))(str(h5ad))
    assert kwargs["metadata"]["sdata"] is None and kwargs["metadata"]["adata"].n_obs == 200
    np.testing.assert_allclose(data, np.asarray(sdata.tables["table"].obsm["spatial"])[:, ::-1])
    assert get_reader(str(tmp_path / "other.txt")) is None


def test_real_merfish_sample_layer_and_manifest():
    """File > Open Sample offers the shipped real data beside the simulated tissue."""
    from pathlib import Path

    import npe2

    manifest = npe2.PluginManifest.from_file(
        Path(__file__).resolve().parents[2] / "src" / "napari_causcell" / "napari.yaml")
    samples = {s.key: s.command for s in manifest.contributions.sample_data}
    assert samples == {"brain_aging": "napari-causcell.brain_aging_sample",
                       "merfish_brain_aging": "napari-causcell.merfish_brain_aging_sample"}
    commands = {c.id: c.python_name for c in manifest.contributions.commands}
    assert commands["napari-causcell.merfish_brain_aging_sample"] == (
        "napari_causcell._napari._sample:merfish_brain_aging_sample")

    (data, kwargs, kind), *_ = merfish_brain_aging_sample()
    meta = kwargs["metadata"]
    assert kind == "points" and data.shape == (4788, 2)
    assert meta["adata"] is meta["sdata"].tables["table"]
    assert meta["table_names"] == ["table"] and meta["name"] == "cells"
    assert "Sun et al." in meta["credit"] and "MIT" in meta["credit"]
    assert meta["causcell_color_by"] == "cell_type"
    np.testing.assert_allclose(data, np.asarray(meta["adata"].obsm["spatial"])[:, ::-1])
    layer = _Layer(data, kwargs)
    s = session_for(layer)
    np.testing.assert_array_equal(layer_rows(layer, s), np.arange(4788))
