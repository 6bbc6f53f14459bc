"""#28 item 1 (confound part): label switches that may follow a sampling confound."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from napari_causcell import DataError, tl
from napari_causcell.tl._switches import confound_note


def _tissue(msn: dict[str, int], n: int = 100) -> ad.AnnData:
    """Mice (``{mouse: MSN cells}``, names starting y = young, o = old) of ``n`` cells each:
    ``msn[mouse]`` MSN, the rest Astro."""
    rows = []
    for mouse, k in msn.items():
        age = "young" if mouse.startswith("y") else "old"
        rows += [{"age": age, "mouse": mouse, "cell_type": "MSN" if i < k else "Astro"}
                 for i in range(n)]
    obs = pd.DataFrame(rows, index=[f"c{i}" for i in range(len(rows))])
    return ad.AnnData(np.zeros((len(obs), 2), np.float32), obs=obs)


def _cf(adata: ad.AnnData, n_switch: int = 10) -> ad.AnnData:
    """do(age=old) of the young cells, ``n_switch`` MSN of them switched to Astro."""
    young = adata[adata.obs["age"] == "young"]
    obs = pd.DataFrame({"source_id": young.obs_names.astype(str),
                        "factual_cell_type": young.obs["cell_type"].astype(str).to_numpy()},
                       index=young.obs_names)
    after = obs["factual_cell_type"].to_numpy().copy()
    after[np.flatnonzero(after == "MSN")[:n_switch]] = "Astro"
    obs["cell_type"], obs["age"] = after, "old"
    cf = ad.AnnData(np.zeros((len(obs), 2), np.float32), obs=obs)
    cf.uns["causcell"] = {"do": {"age": "old"}, "descendants": ["cell_type"]}
    return cf


def test_a_switch_that_sections_explain_is_flagged_with_the_numbers():
    # young: MSN 30 % in one mouse, 0 % in the other (15 % pooled); old: 10 % in both
    adata = _tissue({"y1": 30, "y2": 0, "o1": 10, "o2": 10})
    with pytest.warns(UserWarning, match="may follow a sampling confound") as rec:
        table = tl.switch_confounds(_cf(adata), adata, by="mouse")
    msn = table.set_index("label").loc["MSN"]
    assert msn["freq_source"] == pytest.approx(0.15) and msn["freq_target"] == pytest.approx(0.1)
    assert msn["time_difference"] == pytest.approx(0.05)
    assert msn["section_spread"] == pytest.approx(0.30) and msn["sections_per_label"] == 2
    assert bool(msn["confounded"])
    text = str(rec[0].message)
    assert ("MSN is 15.0% of age=young cells and 10.0% of age=old cells, but varies by "
            "30.0% between the mouse values of one age (sampling alone: 9.9%)") in text
    assert confound_note(_cf(adata), adata, by="mouse").startswith(" Confound: ")
    assert "(the 'Keep' box, hold= or --hold)" in text  # each front end's way


def test_a_switch_larger_than_the_sections_spread_is_not_flagged():
    adata = _tissue({"y1": 20, "y2": 20, "o1": 50, "o2": 50})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = tl.switch_confounds(_cf(adata), adata)  # by: the 'mouse' column, guessed
    msn = table.set_index("label").loc["MSN"]
    assert msn["time_difference"] == pytest.approx(0.30)
    assert msn["section_spread"] == pytest.approx(0.0) and not table["confounded"].any()
    assert table.attrs["by"] == "mouse"
    assert confound_note(_cf(adata), adata) == ""


def test_one_section_per_label_cannot_be_told_apart():
    adata = _tissue({"y1": 30, "o1": 5})
    with pytest.warns(UserWarning, match="Each age label has one mouse") as rec:
        table = tl.switch_confounds(_cf(adata), adata)
    msn = table.set_index("label").loc["MSN"]
    assert msn["time_difference"] == pytest.approx(0.25) and np.isnan(msn["section_spread"])
    assert msn["sections_per_label"] == 1 and bool(msn["confounded"])
    assert "MSN is 30.0% of age=young cells and 5.0% of age=old cells" in str(rec[0].message)


def test_no_switch_and_no_section_column():
    adata = _tissue({"y1": 30, "y2": 0, "o1": 10, "o2": 10})
    assert tl.switch_confounds(_cf(adata, n_switch=0), adata).empty
    with pytest.raises(DataError, match="No section or donor column"):
        tl.switch_confounds(_cf(adata), adata.copy().obs.drop(columns="mouse").pipe(
            lambda o: ad.AnnData(np.zeros((len(o), 2), np.float32), obs=o)))
    with pytest.raises(DataError, match="'slide' is not in obs"):
        tl.switch_confounds(_cf(adata), adata, by="slide")


def test_a_spread_within_sampling_noise_is_not_a_confound():
    # young mice 12 % and 18 % MSN (a 6-point range from 100 cells each: sampling noise),
    # old 10 %: the 5-point time difference is not explained by the sections
    adata = _tissue({"y1": 12, "y2": 18, "o1": 10, "o2": 10})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = tl.switch_confounds(_cf(adata), adata, by="mouse")
    msn = table.set_index("label").loc["MSN"]
    assert msn["section_spread"] == pytest.approx(0.06)
    # 1.96 sqrt(p (1 - p) (1/100 + 1/100)) with p = 15 %
    assert msn["section_noise"] == pytest.approx(1.96 * np.sqrt(0.15 * 0.85 * 0.02))
    assert msn["time_difference"] == pytest.approx(0.05) and not msn["confounded"]
    # 10 % and 20 % from 2,000 cells per mouse: 8 points beyond noise, more than 5: flagged
    big = _tissue({"y1": 200, "y2": 400, "o1": 200, "o2": 200}, n=2000)
    with pytest.warns(UserWarning, match="may follow a sampling confound"):
        table = tl.switch_confounds(_cf(big), big, by="mouse")
    assert bool(table.set_index("label").loc["MSN", "confounded"])
