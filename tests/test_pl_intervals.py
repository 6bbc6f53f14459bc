"""pl.change_intervals: the forest plot draws the numbers of its table (issue 26 item 3)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba

from napari_causcell import pl
from napari_causcell.errors import DataError, SettingError
from napari_causcell.pl._intervals import DOWN, LOW_RELIABILITY, SPANS_ZERO, UP
from napari_causcell.pl._plots import FADED_ALPHA


def _table() -> pd.DataFrame:
    """Two groups, five genes; in A: g1 +1.5 [1.0, 2.0], g2 -1.0 [-1.4, -0.6], g3 +0.5
    spanning 0, g4 -0.2 [-0.3, -0.1] unreliable, g5 +0.05 spanning 0."""
    a = pd.DataFrame({
        "gene": ["g5", "g3", "g1", "g4", "g2"],
        "change": [0.05, 0.5, 1.5, -0.2, -1.0],
        "lower": [-0.1, -0.2, 1.0, -0.3, -1.4],
        "upper": [0.2, 1.2, 2.0, -0.1, -0.6],
        "reliability": [0.6, 0.5, 0.7, 0.05, 0.4],
    })
    b = a.assign(change=-a["change"], lower=-a["upper"], upper=-a["lower"],
                 reliability=0.5)
    df = pd.concat([a.assign(group="A"), b.assign(group="B")], ignore_index=True)
    df["n_support"], df["extrapolated"] = 30, False
    df.attrs["calibration"] = {"level": 0.9}
    return df[["group", "gene", "change", "lower", "upper", "reliability", "n_support",
               "extrapolated"]]


def _named(ax, label):
    return next(c for c in ax.collections if c.get_label() == label)


def test_rows_ranked_with_their_intervals():
    fig = pl.change_intervals(_table())
    a, b = [ax for ax in fig.axes if ax.get_visible()]
    assert [a.get_title(), b.get_title()] == ["A", "B"]
    genes = [t.get_text() for t in a.get_yticklabels()]
    assert genes == ["g1", "g2", "g3", "g4", "g5"]  # by |change|, largest on top
    y = _named(a, "change").get_offsets()
    np.testing.assert_allclose(y[:, 0], [1.5, -1.0, 0.5, -0.2, 0.05])
    np.testing.assert_allclose(y[:, 1], [0, 1, 2, 3, 4])
    assert a.get_ylim() == (4.5, -0.5)  # row 0 at the top
    bars = np.array(_named(a, "interval").get_segments())
    np.testing.assert_allclose(bars[:, 0, 0], [1.0, -1.4, -0.2, -0.3, -0.1])
    np.testing.assert_allclose(bars[:, 1, 0], [2.0, -0.6, 1.2, -0.1, 0.2])
    np.testing.assert_allclose(bars[:, :, 1], np.repeat(np.arange(5.0), 2).reshape(5, 2))
    # the second group has the mirrored numbers
    np.testing.assert_allclose(_named(b, "change").get_offsets()[:, 0],
                               [-1.5, 1.0, -0.5, 0.2, -0.05])
    assert "90% interval" in a.get_xlabel()


def test_spanning_zero_is_grey_and_hollow_low_reliability_faded():
    ax = pl.change_intervals(_table(), groups="A", ax=matplotlib.pyplot.subplots()[1])
    points = _named(ax, "change")
    face, edge = points.get_facecolors(), points.get_edgecolors()
    grey, up, down = to_rgba(SPANS_ZERO), to_rgba(UP), to_rgba(DOWN)
    # rows g1 g2 g3 g4 g5: up, down, spans 0, down (unreliable), spans 0
    np.testing.assert_allclose(edge[:, :3], [up[:3], down[:3], grey[:3], down[:3], grey[:3]])
    np.testing.assert_allclose(face[:, 3], [1, 1, 0, FADED_ALPHA, 0])  # hollow where 0 inside
    np.testing.assert_allclose(edge[:, 3], [1, 1, 1, FADED_ALPHA, 1])
    bars = _named(ax, "interval").get_colors()
    np.testing.assert_allclose(bars[:, 3], [1, 1, 1, FADED_ALPHA, 1])
    assert [t.get_alpha() for t in ax.get_yticklabels()] == [1, 1, 1, FADED_ALPHA, 1]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]  # right of the given axes
    assert "interval includes 0" in legend
    assert f"faded: reliability < {LOW_RELIABILITY} or extrapolated" in legend


def test_genes_n_groups_and_observed():
    df = _table()
    fig = pl.change_intervals(df, n=2, groups=["B"])
    (ax,) = [a for a in fig.axes if a.get_visible()]
    assert ax.get_title() == "B" and [t.get_text() for t in ax.get_yticklabels()] == ["g1", "g2"]
    fig = pl.change_intervals(df, genes=["g5", "g1"])
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_yticklabels()] == ["g5", "g1"]
    observed = pd.DataFrame({"group": ["A", "A", "B"], "gene": ["g1", "g4", "g1"],
                             "observed": [1.2, -0.5, -1.0], "se": [0.1, 0.2, 0.3]})
    fig = pl.change_intervals(df, genes=["g1", "g4"], observed=observed)
    a, b = fig.axes[:2]
    np.testing.assert_allclose(_named(a, "observed").get_offsets(), [[1.2, 0.25], [-0.5, 1.25]])
    half = np.array(_named(a, "observed interval").get_segments())[:, :, 0]
    np.testing.assert_allclose(half, [[1.2 - 0.1645, 1.2 + 0.1645],
                                      [-0.5 - 0.329, -0.5 + 0.329]], atol=1e-3)
    np.testing.assert_allclose(_named(b, "observed").get_offsets(), [[-1.0, 0.25]])
    (legend,) = fig.legends  # one legend under the panels
    assert "observed" in [t.get_text() for t in legend.get_texts()]
    assert a.get_legend() is None


def test_extrapolated_group_is_said_and_faded():
    df = _table()
    df.loc[df["group"] == "B", "extrapolated"] = True
    fig = pl.change_intervals(df)
    a, b = fig.axes[:2]
    assert a.get_title() == "A" and b.get_title() == "B (extrapolated)"
    np.testing.assert_allclose(_named(b, "change").get_edgecolors()[:, 3], FADED_ALPHA)


def test_refusals():
    df = _table()
    with pytest.raises(DataError, match="lack the columns"):
        pl.change_intervals(df.drop(columns="upper"))
    with pytest.raises(DataError, match="Genes not in the intervals"):
        pl.change_intervals(df, genes=["nope"])
    with pytest.raises(DataError, match="Groups not in the intervals"):
        pl.change_intervals(df, groups=["C"])
    with pytest.raises(SettingError, match="ax holds one panel"):
        pl.change_intervals(df, ax=matplotlib.pyplot.subplots()[1])
    with pytest.raises(DataError, match="observed lacks"):
        pl.change_intervals(df, observed=pd.DataFrame({"gene": ["g1"]}))
    with pytest.raises(DataError, match="empty"):
        pl.change_intervals(df.iloc[:0])
