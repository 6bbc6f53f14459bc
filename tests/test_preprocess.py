import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from napari_causcell.data import DataError, expression, select_genes


def make(x, genes=None):
    x = np.asarray(x, dtype=np.float32)
    genes = genes or [f"g{i}" for i in range(x.shape[1])]
    return ad.AnnData(sparse.csr_matrix(x), var=pd.DataFrame(index=genes))


def test_log_normalisation_matches_definition():
    a = make([[1, 3, 0], [0, 0, 5]])
    x = expression(a, ["g0", "g1", "g2"]).toarray()
    assert np.allclose(x[0], np.log1p(np.array([1, 3, 0]) / 4 * 1e4), atol=1e-4)
    # gene order follows the model, normalised over the model's genes
    x2 = expression(a, ["g2", "g0"]).toarray()
    assert np.allclose(x2[1], [np.log1p(1e4), 0.0], atol=1e-4)


@pytest.mark.parametrize("bad, msg", [
    ([[1, -1, 0]], "negative"), ([[1, np.nan, 0]], "NaN"), ([[1.5, 2, 0]], "not integers"),
])
def test_bad_counts(bad, msg):
    with pytest.raises(DataError, match=msg):
        expression(make(bad), ["g0", "g1", "g2"])


def test_log_normalized_input_accepted():
    a = make([[0.5, 1.2, 0.0]])
    assert np.allclose(expression(a, ["g0", "g1"], log_normalized=True).toarray(), [[0.5, 1.2]])


def test_missing_genes_and_empty():
    with pytest.raises(DataError, match="1 of the model's 2 genes are missing"):
        expression(make([[1, 2, 3]]), ["g0", "gX"])
    with pytest.raises(DataError, match="No cells"):
        expression(make(np.zeros((0, 3))), ["g0"])


def test_hvg_selection_above_limit(rng):
    import scanpy as sc

    counts = rng.negative_binomial(2, rng.uniform(0.05, 0.8, 60), size=(300, 60)).astype(np.float32)
    a = make(counts)
    assert select_genes(a, max_genes=100) == list(a.var_names)
    chosen = select_genes(a, max_genes=10)
    ref = a.copy()
    sc.pp.normalize_total(ref, target_sum=1e4)
    sc.pp.log1p(ref)
    sc.pp.highly_variable_genes(ref, n_top_genes=10, flavor="seurat")
    best = ref.var["dispersions_norm"].fillna(-np.inf).sort_values(ascending=False, kind="stable").index[:10]
    assert len(chosen) == 10 and set(chosen) == set(best)
    assert chosen == [g for g in a.var_names if g in set(best)]  # data order kept


def test_non_integer_counts_name_a_layer_of_counts():
    """Issue 28 item 10: a log-normalised .X with the counts in a layer says which layer."""
    a = make([[1.5, 0.2, 0.0], [0.0, 0.7, 2.1]])
    with pytest.raises(DataError, match="not integers") as err:
        expression(a, ["g0", "g1", "g2"])
    assert "layer=" not in str(err.value)  # no layer holds counts: no hint
    a.layers["counts"] = sparse.csr_matrix(np.array([[3, 1, 0], [0, 2, 5]], dtype=np.float32))
    a.layers["scaled"] = sparse.csr_matrix(np.array([[0.3, 0.1, 0], [0, 0.2, 0.5]]))
    with pytest.raises(DataError, match=r"layers\['counts'\] holds whole numbers: pass "
                                        r"layer='counts'\."):
        expression(a, ["g0", "g1", "g2"])
    with pytest.raises(DataError, match=r"pass layer='counts'"):
        select_genes(a, max_genes=2)
    assert expression(a, ["g0", "g1", "g2"], layer="counts").shape == (2, 3)
