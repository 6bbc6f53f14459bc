"""scIB bio-conservation / batch-correction scores with scib-metrics (runs in the scverse venv).

    python scib_adapter.py in.h5ad out.json

``in.h5ad``: log-normalised expression in ``.X``; ``obs['batch']`` and ``obs['label']``;
one embedding per method in ``obsm['X_<method>']``. Writes ``{method: {metric: value}}`` with
scib-metrics' default metric sets (unscaled), including the aggregate ``Bio conservation``,
``Batch correction`` and ``Total`` columns.
"""

import json
import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def main(src: str, dst: str) -> None:
    import anndata as ad
    import numpy as np
    import scanpy as sc
    from scib_metrics.benchmark import Benchmarker

    t0 = time.perf_counter()
    adata = ad.read_h5ad(src)
    keys = [k for k in adata.obsm if k.startswith("X_")]
    sc.pp.pca(adata, n_comps=min(30, adata.n_vars - 1, adata.n_obs - 1))
    bm = Benchmarker(adata, batch_key="batch", label_key="label", embedding_obsm_keys=keys,
                     pre_integrated_embedding_obsm_key="X_pca", n_jobs=1)
    bm.benchmark()
    res = bm.get_results(min_max_scale=False)
    res = res.drop(index=[i for i in res.index if i not in keys])
    out = {k[2:]: {c: float(v) for c, v in res.loc[k].items() if np.isfinite(float(v))}
           for k in keys}
    out["_seconds"] = time.perf_counter() - t0
    with open(dst, "w") as fh:
        json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
