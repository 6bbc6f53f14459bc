"""The long docstrings of the trend tools (:func:`age_trends`, :func:`direct_trends`,
:func:`trend_statistics`), kept apart so that the code stays short to read.

Each function's docstring holds its summary and ``{name}`` lines; :func:`fill_doc` puts the
blocks below in their place, indented as the ``{name}`` line (scanpy's ``_doc_params``
pattern). ``help(tl.age_trends)`` and the API pages show the whole text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)


def fill_doc(**blocks: str) -> Callable[[F], F]:
    """Decorator: replace each docstring line that is only ``{name}`` by ``blocks[name]``,
    every non-empty line indented as that line."""

    def fill(fn: F) -> F:
        lines = []
        for line in (fn.__doc__ or "").split("\n"):
            name = line.strip()
            if name.startswith("{") and name.endswith("}") and name[1:-1] in blocks:
                indent = line[: len(line) - len(line.lstrip())]
                lines += [indent + b if b else b for b in blocks[name[1:-1]].split("\n")]
            else:
                lines.append(line)
        fn.__doc__ = "\n".join(lines)
        return fn

    return fill


AGE_TRENDS_INTRO = """\
For the cells labelled ``concept == source`` (optionally restricted by ``cells``), each
model generates ``do(concept = target)`` for every target; a cell's effect is the paired
change ``layers['delta']`` (counterfactual minus the same cell generated without
intervention). Per target, group and gene:

- per model and per source **donor** (mouse) the mean change of that donor's cells;
- the effect (``mean_change``) = mean over models of the mean over donors (donors with
  ``min_donor_cells`` cells in the group are the replicates; with fewer than two such
  donors, the cell mean of the group);
- its variance from the units of replication: donor-to-donor variance / D (with >= 2
  donors) plus model-to-model variance / M (with >= 2 models, an ensemble over training
  seeds), Welch-Satterthwaite degrees of freedom; a ``level`` t-interval and a two-sided
  t-test p-value; ``unit`` names what was used (``"donors+models"``, ``"donors"``,
  ``"models"``, or ``"none"``: one donor and one model, no interval and no p-value).
  When the ensemble holds jackknife models (one per donor left out,
  :func:`train_ensemble` with ``jackknife=``), the donor term is their stratified
  jackknife variance instead (``"donors (jackknife)+models"``): donor sampling measured
  on the model, which shrinks and pools effects, rather than on the observed donors;
- Benjamini-Hochberg q-values (``padj``) over every defined test of the call;
  ``significant = padj < alpha and |mean_change| >= min_effect``.

Rows whose source group or target label rests on one donor are flagged ``one_donor`` (and
a warning is issued): there, age and mouse are confounded and the interval reflects only
model uncertainty. Generated cells are never counted as replicates: more cells per donor
make each donor's mean more precise, not the test more significant."""


AGE_TRENDS_PARAMETERS = """\
data
    AnnData or SpatialData holding the cells (raw counts, as the model was trained). The
    data comes first, as in :func:`counterfactual`; the old order ``(model, data)`` still
    works (told apart by type) with a :class:`DeprecationWarning`.
model
    A trained :class:`~napari_causcell.CausCell` with ``concept`` among its concepts, or a
    list of them (an ensemble: the same data and settings, different seeds; see
    :func:`train_ensemble`). One model gives no seed-to-seed term (its spread over the
    source donors stands in). Models that record a left-out donor
    (``train_params['left_out']``) give the donor jackknife, not the effect.
concept
    The ordered concept to move along. Default: the model's time concept (``age`` when it
    has one, else its only concept named like a time: ``time``, ``stage``, ``timepoint``...);
    a :class:`~napari_causcell.errors.SettingError` lists the concepts when there is none
    or several.
source
    Label of the cells to intervene on (e.g. ``"4wk"``). Default: the youngest label of
    ``concept`` (the smallest number of labels such as ``4wk, 24wk, 90wk``, else the first
    label of the model).
targets
    Label(s) to set; default every other label of ``concept``.
groupby
    ``obs`` columns defining groups (e.g. ``["cell_type", "domain"]``), taken from the
    **source** (factual) cells; ``None`` for one group of all cells. Default ``"auto"``: the
    model's other concepts that are columns of the data (``cell_type`` and ``domain``
    first, as the former default, then the others in the model's order).
genes
    Genes to test (default all model genes).
donor_key
    The donor (mouse) column; default the first of ``donor``, ``donor_id``, ``mouse``, ...
    in obs; ``False``: no donors (every cell of one unknown donor).
level
    Confidence level of the interval ``ci_low`` .. ``ci_high`` (default 0.95).
test
    Only ``"t-test"`` (replicate-level tests; kept for compatibility).
alpha
    Level of the BH q-value (``padj``).
min_effect
    Smallest absolute mean change (log-normalised units) called significant
    (default :data:`DEFAULT_MIN_EFFECT` = 0.1).
min_cells
    Groups with fewer source cells are not tested.
min_donor_cells
    Donors with fewer source cells in a group are not replicates of that group.
null
    The null distribution of the test statistics.

    - ``"empirical"``: the donor term also gets the donors' **shared** variance (a
      mouse's offset common to every group, which the model's pooling over groups does
      not average away: the within-age variance of each donor's mean deviation across
      the groups, moderated over genes, times ``1/D_source + 1/D_target``); then every
      standard error of the call is rescaled by the scale of the **empirical null**
      (:func:`empirical_null`, Efron's method), estimated from the central statistics
      of the call. The observed-donor term overstates how much the model's pooled
      effects move with the donors, so without this the test is conservative. Needs at
      least 200 defined tests. Fit in ``params`` (``null_scale``, ``null_center``).
    - ``"theoretical"``: each test's own t distribution.
    - ``"auto"`` (default): ``"empirical"`` for an ensemble (2 or more models on all
      donors, no jackknife models) with donor replication in at least 200 tests;
      ``"theoretical"`` otherwise (one model, one donor per age, jackknife, or few
      tests). ``params['null']`` says which was used.

    With 2 mice per age on two simulated tissues the 5-model ensemble's test was
    calibrated with ``"empirical"`` (null p <= 0.1 in 10 % and 9 % of null tests),
    recovered 14 and 14 of 15 planted trends (direct donor test 13 and 14) with 9 % and
    8 % false calls at q <= 0.1 (direct test 13 % and 12 %); with ``"theoretical"`` 10
    and 13 of 15 with 0 % and 2 % (docs/brain_aging.md, "Measured on the built-in
    tissue").
switched
    ``"exclude"`` (default): cells whose groupby labels the intervention changes (e.g. an
    OPC that becomes an oligodendrocyte under do(age), as the label SCM allows) are left
    out of their group, so a per-type trend is the change of cells that stay that type;
    ``"include"`` keeps them (a total effect, including type switches).
marginal
    Also test all cells together and each prefix of ``groupby`` (e.g. per cell type over
    all domains), written with ``"all"`` in the columns left out.
cells
    Further restriction of the source cells (see :func:`select_cells`).
table_key
    Table of a SpatialData.
key_added
    Where the result is stored in the table's ``uns``.
store_counterfactuals
    Keep each target's counterfactual of the first model (as
    :func:`~napari_causcell.tl.counterfactual` does: table ``<key_added>_<concept>_<target>``,
    e.g. ``causcell_trends_age_90wk``, of a SpatialData, or ``adata.uns['causcell'][...]``);
    needed by :func:`napari_causcell.pl.age_trends` and
    :func:`napari_causcell.pl.spatial_trend`. Ignored with ``copy=True``.
copy
    Return the results table instead of writing anything; ``data`` is left untouched.
progress
    Called as ``progress(fraction)`` while generating.
**counterfactual_kwargs
    Passed to :meth:`CausCell.counterfactual` (``steps``, ``seed``, ``donor``,
    ``n_samples``, ...). With ``n_samples > 1`` the deltas are averaged per cell first."""


AGE_TRENDS_RESULTS = """\
Returns
-------
None or pandas.DataFrame
    ``None`` by default (read ``uns[key_added]['results']`` of the table). With
    ``copy=True`` the results table (as squidpy, the computed result, not a copy of
    ``data``; the replicates and donor variances are only written in place). One row per
    target x group x gene: ``method`` ("causcell"), ``target``, the groupby
    columns, ``gene``, ``n_source`` (cells), ``n_target`` (= ``n_source``),
    ``n_donors_source`` (replicate donors of the group), ``n_donors_target`` (donors
    observed at the target label in the group), ``n_models``, ``mean_source`` (mean
    observed log-normalised expression of the source cells), ``mean_target``
    (``mean_source + mean_change``), ``mean_change`` (the effect), ``se``, ``ci_low``,
    ``ci_high`` (the ``level`` interval), ``df``, ``statistic`` (t), ``pvalue``, ``padj``
    (BH q-value), ``direction`` ("up"/"down"), ``significant``, ``unit`` (the units of
    replication) and ``one_donor``.

Writes
------
Unless ``copy=True`` (each key is logged at INFO level, logger ``napari_causcell.tl``):

- ``uns[key_added] = {"results": <that DataFrame>, "params": {...}, "skipped":
  <groups below min_cells>, "replicates": <per model, donor, group and gene mean
  changes, the input of trend_statistics>, "donor_variance": <per group and gene the
  observed donors' pooled within-age variance>}`` in the table;
- when ``store_counterfactuals``, one counterfactual per target (see above): table
  ``<key_added>_<concept>_<target>`` of a SpatialData, or
  ``adata.uns['causcell']['<key_added>_<concept>_<target>']``.

Raises
------
ConceptError
    Unknown concept or label, or a target equal to the source.
DataError
    Missing groupby column, no source cells, or no group with ``min_cells`` cells."""


DIRECT_TRENDS_INTRO = """\
The baseline for :func:`age_trends`, on the same log-normalised scale the model uses
(``log1p`` of counts per 10,000 over ``genes``), with the same Benjamini-Hochberg
correction and ``min_effect`` threshold. The units of replication (``unit``):

- ``"donors"``: per group, each donor's (mouse's) mean expression is one replicate
  (pseudobulk); the effect is the difference of the donor means, tested by a Welch t-test
  between the target and the source donors (``level`` interval with Welch df). Needs two
  or more donors with ``min_donor_cells`` cells on both sides.
- ``"cells"``: cells are the replicates (Welch t-test or Mann-Whitney for
  ``test="wilcoxon"``), i.e. pseudo-replicated when there are few donors: donor
  differences count as age.
- ``"auto"`` (default): donors where a group has two or more per side, cells otherwise
  (those rows are flagged ``one_donor``, with a warning)."""


DIRECT_TRENDS_PARAMETERS = """\
data
    AnnData or SpatialData (raw counts in ``.X`` or ``layer``).
concept, source, targets, groupby, alpha, min_effect, min_cells, marginal, level
    As in :func:`age_trends`; groups need ``min_cells`` cells on **both** sides. Defaults
    come from the data: ``concept`` ``age`` or the only label column named like a time,
    ``source`` its youngest label, ``groupby="auto"`` the cell-type column (``cell_type``,
    else the only column named like cell types) and ``domain`` where present.
genes
    Genes to test and normalise over (default all; pass ``model.genes`` to match a model).
unit
    ``"auto"``, ``"donors"`` (groups without two donors per side are skipped) or
    ``"cells"``.
donor_key
    The donor column (default guessed: ``donor``, ``donor_id``, ``mouse``, ...).
test
    Cell-level test: ``"t-test"`` (Welch) or ``"wilcoxon"`` (Mann-Whitney); donor-level
    tests are Welch t-tests.
min_donor_cells
    Donors with fewer cells in a group are not replicates of that group.
null
    ``"theoretical"`` (default) or ``"empirical"``: standard errors rescaled by the
    empirical null of the call's t statistics (see :func:`age_trends`; not with
    ``test="wilcoxon"``).
layer, log_normalized
    Where the counts are, and whether they are already log-normalised.
table_key
    Table of a SpatialData.
key_added
    Where the result is stored in the table's ``uns``.
copy
    Return the results table instead of writing it; ``data`` is left untouched."""


DIRECT_TRENDS_RESULTS = """\
Returns
-------
None or pandas.DataFrame
    ``None`` by default (read ``uns[key_added]['results']`` of the table). With
    ``copy=True`` the results table (as squidpy, the computed result, not a copy of
    ``data``): columns as :func:`age_trends` with ``method`` "direct", ``n_source`` /
    ``n_target`` the observed cells on each side, ``n_donors_source`` /
    ``n_donors_target`` the replicate donors, ``n_models`` 0, ``mean_change =
    mean_target - mean_source`` (donor means for ``unit == "donors"``), ``unit``
    ("donors" or "cells").

Writes
------
Unless ``copy=True``: ``uns[key_added] = {"results": <that DataFrame>, "params": {...},
"skipped": <groups below min_cells>}`` in the table (logged at INFO level, logger
``napari_causcell.tl``)."""


TREND_STATISTICS_INTRO = """\
The statistics step of :func:`age_trends`, public so that an ensemble can be assembled from
runs made separately: concatenate the ``uns[key]['replicates']`` tables of single-model
runs after giving each a distinct ``model`` value, and pass one run's
``uns[key]['donor_variance']``.

Per target, group and gene: the effect is the mean over models of the mean over the
group's source donors with ``min_donor_cells`` cells (the cell mean when none has). Its
variance has two parts, each a sample variance moderated over all tests of the call by
:func:`moderate_variances` (empirical Bayes, as limma):

- donor sampling: the within-age variance of the observed donors' mean expression,
  pooled over ages (``donor_variance``), times ``1/D_source + 1/D_target`` (the model
  learned each age from that many donors);
- model uncertainty: the variance of the effect over the models (training seeds) / M;
  with a single model, the variance of its change over the group's source donors / D
  (so a noisy sampler is not mistaken for a precise effect).

Degrees of freedom by Welch-Satterthwaite; ``unit`` says which parts exist."""


TREND_STATISTICS_PARAMETERS = """\
replicates
    Columns ``model``, ``target``, the groupby columns, ``donor``, ``gene``, ``n_cells``,
    ``mean_delta`` (mean paired change of that donor's source cells in the group under
    that model) and ``mean_factual`` (their mean observed log-normalised expression).
donor_variance
    Columns: the groupby columns, ``gene``, ``donor_s2``, ``donor_df`` (see above) and
    ``donor_cells`` (mean cells per donor, for the variance trend); ``None``: no donor
    term.
level
    Confidence level of the interval (default 95 %).
alpha, min_effect
    A trend is ``significant`` when ``padj < alpha`` and ``|mean_change| >= min_effect``.
min_donor_cells
    Donors with fewer source cells in a group are not counted as its donors.
n_donors_target
    Per target and group, ``n_donors_target``: donors observed at the target label (from
    :func:`age_trends`); default unknown (taken as 1).
jackknife
    Columns ``model`` and ``stratum``: the models of ``replicates`` trained with one donor
    left out (:func:`train_ensemble` with ``jackknife=``) and the level (age) of that
    donor. Then donor sampling is measured on the model itself, by the stratified
    delete-one-donor jackknife ``sum_s (n_s - 1) / n_s * sum_i (effect_(i) - mean_s)^2``
    with ``sum_s (n_s - 1)`` degrees of freedom, instead of the observed donors'
    variance (which overstates the model's: its effects are shrunk and pooled over
    groups); the other models give the effect and the seed term.
null
    ``"auto"`` (default), ``"theoretical"`` or ``"empirical"`` (see
    :func:`age_trends`). The donors' shared variance comes from the columns
    ``shared_s2`` and ``shared_df`` of ``donor_variance`` when present."""


TREND_STATISTICS_RESULTS = """\
Returns
-------
pandas.DataFrame
    See :func:`age_trends`."""
