"""Statistics of the trend tests, in numpy and scipy only.

No AnnData, no pandas, no torch, nothing else of napari-causcell: arrays in, arrays out, so
each function can be read, reused and checked against an independent implementation
(``tests/test_stats.py``).

- :mod:`._ttest`: t-interval and p-value from an estimate and its variance; Welch's
  two-sample contrast; per-column Welch t-test or Mann-Whitney test.
- :mod:`._moderated`: empirical Bayes moderated variances (limma's ``squeezeVar``, Smyth 2004).
- :mod:`._null`: the empirical null of many test statistics (Efron 2004, 2007).
- :mod:`._variance`: pooled within-group variance and the stratified delete-one jackknife.
- :mod:`._combine`: two moderated variance components added, with Welch-Satterthwaite
  degrees of freedom.
"""

from ._combine import combine_variances
from ._moderated import moderate_variances, trigamma_inverse
from ._null import empirical_null
from ._ttest import t_interval, two_sample, welch
from ._variance import jackknife_variance, pooled_variance

__all__ = [
    "combine_variances", "empirical_null", "jackknife_variance", "moderate_variances",
    "pooled_variance", "t_interval", "trigamma_inverse", "two_sample", "welch",
]
