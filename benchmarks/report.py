"""Markdown table and bar charts of a comparison run, written into docs/benchmarks.md."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

START, END = "<!-- compare:start -->", "<!-- compare:end -->"

# metric: (label, higher is better)
METRICS = {
    "own_accuracy": ("own-label probe acc.", True),
    "own_f1": ("own-label macro-F1", True),
    "leakage": ("leakage to other labels", False),
    "latent_leakage": ("leakage of u / latent", False),
    "emb_nmi": ("embedding NMI", True),
    "emb_ari": ("embedding ARI", True),
    "scib_bio_conservation": ("scIB bio conservation", True),
    "scib_batch_correction": ("scIB batch correction", True),
    "scib_total": ("scIB total", True),
    "per_cell_r": ("per-cell r", True),
    "mse": ("MSE", False),
    "cluster_nmi": ("cluster NMI real vs gen.", True),
    "cluster_ari": ("cluster ARI real vs gen.", True),
    "marker_overlap": ("top-50 marker overlap", True),
    "cf_r": ("CF r of mean change", True),
    "cf_auroc": ("CF AUROC responsive genes", True),
    "cf_mse": ("CF MSE of mean change", False),
    "cf_energy": ("CF energy distance", False),
    "cf_r_matched": ("CF r, truth within regions", True),
    "cf_mse_matched": ("CF MSE, truth within regions", False),
    "planted_signs": ("planted effects with the right sign", True),
    "planted_slope": ("slope of predicted vs true planted effect (1 best)", True),
    "cf_switched": ("share of cells whose type switched", True),
    "cf_composition_tv": ("CF type composition, TV distance to truth", False),
    "marker:Oligodendrocyte:C4b": ("C4b change in held-out Oligodendrocytes", True),
    "marker:Astrocyte:Gfap": ("Gfap change in held-out Astrocytes", True),
    "marker:Microglia:B2m": ("B2m change in held-out Microglia", True),
    "marker:Microglia:H2-K1": ("H2-K1 change in held-out Microglia", True),
    "train_seconds": ("training s", False),
    "cells_per_s": ("training cells/s", True),
    "time_to_95pct_s": ("s to 95 % of final val. loss", False),
}
GROUPS = {
    "Disentanglement (held-out cells)": ["own_accuracy", "own_f1", "leakage", "latent_leakage",
                                         "emb_nmi", "emb_ari", "scib_bio_conservation",
                                         "scib_batch_correction", "scib_total"],
    "Reconstruction (held-out cells)": ["per_cell_r", "mse", "cluster_nmi", "cluster_ari",
                                        "marker_overlap"],
    "Counterfactuals against the true ones": [
        "cf_r", "cf_auroc", "cf_mse", "cf_r_matched", "cf_mse_matched", "cf_energy",
        "planted_signs", "planted_slope",
        "cf_switched", "cf_composition_tv", "marker:Oligodendrocyte:C4b",
        "marker:Astrocyte:Gfap", "marker:Microglia:B2m", "marker:Microglia:H2-K1"],
    "Speed": ["train_seconds", "cells_per_s", "time_to_95pct_s"],
}
ORDER = ["CausCell", "CausCell_IND", "scvi", "biolord", "scgen", "cpa", "mean shift",
         "region shift", "no change"]
NAMES = {"scvi": "scVI", "biolord": "biolord", "scgen": "scGen", "cpa": "CPA"}


def _fmt(mean: float, sd: float, n: int) -> str:
    digits = 0 if abs(mean) >= 100 else 2 if abs(mean) >= 1 else 3
    return f"{mean:.{digits}f} ± {sd:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"


def tables(summary: pd.DataFrame) -> str:
    """One markdown table per dataset x setting x metric group (methods as rows)."""
    parts = []
    for (dataset, setting), d in summary.groupby(["dataset", "setting"], sort=False):
        parts.append(f"### {dataset}, {setting.upper()}\n")
        for group, metrics in GROUPS.items():
            cols = [m for m in metrics if m in set(d["metric"])]
            if not cols:
                continue
            methods = [m for m in ORDER if m in set(d["method"])] + sorted(
                set(d["method"]) - set(ORDER))
            head = "| method | " + " | ".join(
                METRICS[m][0] + (" ↑" if METRICS[m][1] else " ↓") for m in cols) + " |"
            lines = [f"*{group}*\n", head, "|---" * (len(cols) + 1) + "|"]
            for method in methods:
                row = d[d["method"] == method].set_index("metric")
                if not any(m in row.index for m in cols):
                    continue
                cells = [_fmt(row.loc[m, "mean"], row.loc[m, "sd"], int(row.loc[m, "n"]))
                         if m in row.index else "–" for m in cols]
                lines.append(f"| {NAMES.get(method, method)} | " + " | ".join(cells) + " |")
            parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def bar_charts(summary: pd.DataFrame, path: Path,
               metrics=("own_accuracy", "leakage", "per_cell_r", "marker_overlap", "cf_r",
                        "cf_auroc")) -> Path:
    """Grouped bars (methods x settings) of the headline metrics, like the paper's figures."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    datasets = list(dict.fromkeys(summary["dataset"]))
    rows = [(ds, m) for ds in datasets for m in metrics
            if m in set(summary[summary["dataset"] == ds]["metric"])]
    fig = Figure(figsize=(3.2 * min(len(metrics), 3), 2.6 * ((len(rows) + 2) // 3)))
    ncol = 3
    nrow = (len(rows) + ncol - 1) // ncol
    for i, (ds, metric) in enumerate(rows):
        ax = fig.add_subplot(nrow, ncol, i + 1)
        d = summary[(summary["dataset"] == ds) & (summary["metric"] == metric)]
        methods = [m for m in ORDER if m in set(d["method"])]
        settings = list(dict.fromkeys(d["setting"]))
        w = 0.8 / max(len(settings), 1)
        for j, s in enumerate(settings):
            dd = d[d["setting"] == s].set_index("method").reindex(methods)
            ax.bar(np.arange(len(methods)) + j * w, dd["mean"], w, yerr=dd["sd"],
                   label=s.upper(), capsize=2)
        ax.set_xticks(np.arange(len(methods)) + w * (len(settings) - 1) / 2)
        ax.set_xticklabels([NAMES.get(m, m) for m in methods], rotation=45, ha="right",
                           fontsize=7)
        ax.set_title(f"{ds}: {METRICS[metric][0]}", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        if i == 0:
            ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def sampler_table(runs: list[dict]) -> str:
    rows = [dict(s, dataset=r["dataset"], setting=r["setting"], seed=r["seed"])
            for r in runs for s in r.get("samplers", [])]
    if not rows:
        return ""
    df = pd.DataFrame(rows)
    cols = ["seconds_per_1000_cells"] + [c for c in ("cf_r", "per_cell_r") if c in df]
    g = df.groupby(["dataset", "setting", "sampler"], sort=False)[cols].mean().reset_index()
    lines = ["| dataset | setting | sampler | s per 1,000 cells | quality |", "|---|---|---|---|---|"]
    for r in g.itertuples(index=False):
        qual = "; ".join(f"{c} {getattr(r, c):.3f}" for c in ("cf_r", "per_cell_r")
                         if c in g and np.isfinite(getattr(r, c)))
        lines.append(f"| {r.dataset} | {r.setting.upper()} | {r.sampler} | "
                     f"{r.seconds_per_1000_cells:.1f} | {qual} |")
    return "\n".join(lines) + "\n"


def markdown(result: dict, summary: pd.DataFrame, image: str | None) -> str:
    m = result["machine"]
    a = result["args"]
    head = (f"Run `{result['command']}` on {result['date']}: {m['cpu']}, {m['cores']} cores, "
            f"torch {m['torch']} with {m['torch_threads']} thread(s) per process, Python "
            f"{m['python']}. {a['seeds']} seed(s), training budget {a['budget']:.0f} s per "
            f"method and run; {result['elapsed_s'] / 60:.1f} min in all. Mean ± sd over seeds. "
            f"Raw numbers: `benchmarks/results/{result['file']}`.\n")
    if result.get("merged"):
        head += f"\nMerged: {result['merged']}.\n"
    peers = result.get("peers", {})
    lines = [head]
    if peers:
        lines.append("Peers: " + "; ".join(
            f"{NAMES.get(p, p)} {s}" if s.startswith("not run") else f"{NAMES.get(p, p)}: {s}"
            for p, s in peers.items()) + ".\n")
    if image:
        lines.append(f"![benchmark bars]({image})\n")
    lines.append(tables(summary))
    st = sampler_table(result["runs"])
    if st:
        lines.append("### Samplers (CausCell, first seed)\n\n" + st)
    return "\n".join(lines)


def write_docs(result: dict, summary: pd.DataFrame, doc: Path, image_dir: Path) -> Path:
    """Replace the text between the compare markers of ``doc`` (appended when missing)."""
    img = bar_charts(summary, image_dir / "benchmark_compare.png")
    body = markdown(result, summary, f"images/{img.name}")
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    block = f"{START}\n{body}\n{END}"
    if START in text and END in text:
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text,
                      flags=re.S)
    else:
        text = text.rstrip() + "\n\n## Side by side: CausCell, ablation, foils and peers\n\n" \
            + block + "\n"
    doc.write_text(text)
    return doc
