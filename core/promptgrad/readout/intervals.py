"""Bootstrap intervals: how much a test loss or an accuracy could move had other test pairs been drawn.

A percentile bootstrap over test pairs (Efron's; lm-evaluation-harness reports a bootstrap error the
same way): draw `RESAMPLES` samples of n pairs with replacement, compute the statistic on each, and
take the central `LEVEL` of those values. Pairs, not tokens, are resampled: the pairs are what was
drawn, and the tokens of one target are not independent of each other. So the test loss, a mean per
target token, is resampled as a ratio: the summed loss of the drawn pairs over their summed target
tokens. The draws come from a generator with a fixed seed: scoring the same pairs again gives the same
interval, and two prompts scored on the same pairs are resampled alike.

Vectorised: one [resamples, n] matrix of indices (in blocks of rows when n is large, so memory stays
bounded), turned into how often each pair is drawn, so that the resamples' sums are one matrix product;
no loop over resamples.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import torch

RESAMPLES = 1000
LEVEL = 0.95
SEED = 20  # fixed: the same pairs give the same interval on every rerun
MAX_BLOCK = 4_000_000  # indices drawn at once (32 MB of int64): resamples are taken in blocks of rows beyond that


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def count_blocks(n: int, resamples: int = RESAMPLES, seed: int = SEED) -> Iterator[torch.Tensor]:
    """How often each of n pairs is drawn in each resample: the [resamples, n] matrix of indices drawn
    with replacement, counted per row (float64, so a resample's sums are one matrix product). In blocks
    of rows of at most MAX_BLOCK entries: one block unless n is large."""
    generator = torch.Generator().manual_seed(seed)
    rows = max(1, MAX_BLOCK // max(1, n))
    for start in range(0, resamples, rows):
        index = torch.randint(n, (min(rows, resamples - start), n), generator=generator)
        yield torch.zeros(index.shape, dtype=torch.float64).scatter_add_(
            1, index, torch.ones(index.shape, dtype=torch.float64)
        )


@functools.lru_cache(maxsize=4)
def one_block(n: int, resamples: int, seed: int) -> torch.Tensor:
    """The counts when they fit one block, drawn once and reused for every prompt scored on the same pairs."""
    return next(count_blocks(n, resamples, seed))


def resampled_means(
    numerators: torch.Tensor, denominators: torch.Tensor, resamples: int = RESAMPLES, seed: int = SEED
) -> torch.Tensor:
    """[resamples] values of sum(numerators[i]) / sum(denominators[i]) over index samples i of n pairs
    drawn with replacement (float64, on the CPU)."""
    numerators, denominators = numerators.double().cpu(), denominators.double().cpu()
    n = len(numerators)
    blocks = [one_block(n, resamples, seed)] if n * resamples <= MAX_BLOCK else count_blocks(n, resamples, seed)
    return torch.cat([(counts @ numerators) / (counts @ denominators) for counts in blocks])


def percentile_interval(values: torch.Tensor, level: float = LEVEL) -> Interval:
    """The central `level` of `values` (linear interpolation between order statistics, as numpy's percentile)."""
    tail = (1 - level) / 2
    low, high = torch.quantile(values, torch.tensor([tail, 1 - tail], dtype=values.dtype)).tolist()
    return Interval(low, high)


def ratio_interval(
    numerators: torch.Tensor, denominators: torch.Tensor, level: float = LEVEL, resamples: int = RESAMPLES
) -> Interval:
    """Interval of sum(numerators) / sum(denominators), pairs resampled: the test loss, from each pair's
    summed loss and its number of target tokens."""
    return percentile_interval(resampled_means(numerators, denominators, resamples), level)


def mean_interval(values: torch.Tensor, level: float = LEVEL, resamples: int = RESAMPLES) -> Interval:
    """Interval of the mean of per-pair values: the accuracy, from each pair's 1 (right) or 0."""
    values = torch.as_tensor(values, dtype=torch.float64)
    return ratio_interval(values, torch.ones_like(values), level, resamples)


# ---- how a value and its interval are written, the same everywhere (terminal, eval, the TUI) --------


def loss_text(loss: float | None, interval: Interval | None = None, places: int = 3) -> str:
    """'1.967 [1.90, 2.03]'; '–' where there is no loss (the majority answer is not a prompt)."""
    if loss is None:
        return "–"
    return f"{loss:.{places}f}" + ("" if interval is None else f" [{interval.low:.2f}, {interval.high:.2f}]")


def accuracy_text(accuracy: float, interval: Interval | None = None) -> str:
    """'37.4% [34.8, 40.1]' (the interval in percent too)."""
    return f"{accuracy:.1%}" + ("" if interval is None else f" [{100 * interval.low:.1f}, {100 * interval.high:.1f}]")


def interval_of(low: float | None, high: float | None) -> Interval | None:
    """An interval from an event's two fields (None on records written before intervals existed)."""
    return None if low is None or high is None else Interval(low, high)
