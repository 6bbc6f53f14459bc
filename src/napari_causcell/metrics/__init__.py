"""Quality metrics of disentanglement, reconstruction and counterfactuals.

Plain functions of arrays and label tables (no model, no AnnData required), as the CausCell
paper defines them, so any method's output can be scored the same way:

- **Disentanglement**: :func:`probe` (cross-validated logistic-regression accuracy and
  macro-F1 of every embedding for every label: own label and leakage to the others),
  :func:`leakage_summary`, :func:`cluster_consistency` (NMI / ARI of clusters of an
  embedding against labels).
- **Reconstruction**: :func:`per_cell_pearson`, :func:`per_cell_mse`,
  :func:`cluster_agreement` (NMI / ARI between Ward clusterings of real and generated cells),
  :func:`marker_overlap` (top-50 Wilcoxon markers per group, real vs generated).
- **Counterfactuals with known truth**: :func:`group_mean_change`,
  :func:`change_correlation`, :func:`responsive_auroc`, :func:`energy_distance`;
  :func:`counterfactual_accuracy` scores a counterfactual of the simulated
  :func:`~napari_causcell.datasets.brain_aging` tissue against its exact truth.
- **Counterfactuals on real data**: :func:`marker_table` (predicted change of known markers
  beside the observed difference).

Expression matrices are cells x genes in the same (e.g. log-normalised) space. Bad input
raises :class:`~napari_causcell.errors.DataError` (a ``ValueError``).
"""

from ._counterfactual import (
    change_correlation,
    energy_distance,
    group_mean_change,
    responsive_auroc,
)
from ._disentanglement import cluster_consistency, leakage_summary, probe
from ._markers import marker_table
from ._reconstruction import cluster_agreement, marker_overlap, per_cell_mse, per_cell_pearson
from ._truth import counterfactual_accuracy

__all__ = [
    "change_correlation", "cluster_agreement", "cluster_consistency", "counterfactual_accuracy",
    "energy_distance", "group_mean_change", "leakage_summary", "marker_overlap",
    "marker_table", "per_cell_mse", "per_cell_pearson", "probe", "responsive_auroc",
]
