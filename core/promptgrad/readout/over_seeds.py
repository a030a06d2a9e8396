"""An interval of a mean over seeds: how well a few runs that differ only by seed pin down the mean a
reader would get from many.

Each run's own bootstrap interval (intervals.py) says how much its score could move had other test
pairs been drawn. Over several seeds the question is another one: where the mean over all seeds lies.
The runs are independent draws (each seed draws its own split, start and batches), so the classical
Student t interval of the mean is used: mean ± t(0.975, n-1) * sd / sqrt(n). It is exact for normally
distributed scores and needs no resampling, which two or three seeds could not support anyway (a
bootstrap over 3 values has 10 distinct resamples). With few seeds it is wide, as it should be: for two
seeds t is 12.7.

Student's t quantile is computed here, not taken from scipy (not a dependency): for integer degrees of
freedom its two-sided probability has a closed form (Abramowitz and Stegun 26.7.3-4), inverted by
bisection to double precision.
"""

from __future__ import annotations

import math
import statistics

from promptgrad.readout.intervals import LEVEL, Interval


def t_central_probability(t: float, df: int) -> float:
    """P(|T| < t) for Student's T with `df` (a positive integer) degrees of freedom, t >= 0."""
    theta = math.atan(t / math.sqrt(df))
    cos2, sin = math.cos(theta) ** 2, math.sin(theta)
    if df % 2:  # odd: 2/pi (theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...)), df-1 over 2 terms in all
        total, term = 0.0, 1.0
        for k in range(1, (df - 1) // 2 + 1):
            total += term
            term *= cos2 * (2 * k) / (2 * k + 1)
        return 2 / math.pi * (theta + (sin * math.cos(theta) * total if df > 1 else 0.0))
    total, term = 0.0, 1.0  # even: sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...), df/2 terms
    for k in range(1, df // 2 + 1):
        total += term
        term *= cos2 * (2 * k - 1) / (2 * k)
    return sin * total


def t_quantile(level: float, df: int) -> float:
    """The t with P(|T| < t) = level: the half-width, in standard errors, of a central `level` interval."""
    if df < 1 or not 0 < level < 1:
        raise ValueError(f"needs df >= 1 and 0 < level < 1, got df={df}, level={level}")
    low, high = 0.0, 1.0
    while t_central_probability(high, df) < level:
        high *= 2
    for _ in range(200):  # bisection: 200 halvings are far below a double's resolution
        middle = (low + high) / 2
        if t_central_probability(middle, df) < level:
            low = middle
        else:
            high = middle
        if high - low <= 1e-15 * high:
            break
    return (low + high) / 2


def mean_interval_over_seeds(
    values: list[float], level: float = LEVEL, bounds: tuple[float, float] = (-math.inf, math.inf)
) -> Interval | None:
    """The t interval of the mean of `values` (one per seed), cut to `bounds` (an accuracy's mean cannot
    leave [0, 1], nor a difference of two accuracies [-1, 1], though a t interval over few seeds can); None
    for fewer than two values (no spread to go by) or where one is not finite (a diverged run)."""
    if len(values) < 2 or not all(math.isfinite(v) for v in values):
        return None
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    half = t_quantile(level, len(values) - 1) * sd / math.sqrt(len(values))
    return Interval(max(bounds[0], mean - half), min(bounds[1], mean + half))
