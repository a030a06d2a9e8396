"""Bootstrap intervals (core/promptgrad/readout/intervals.py): they cover the true value at their nominal rate, are the same
on a rerun, and are written the same way everywhere."""

from __future__ import annotations

import pytest
import torch

from promptgrad.readout.intervals import (
    Interval,
    accuracy_text,
    loss_text,
    mean_interval,
    one_block,
    ratio_interval,
    resampled_means,
)

REPETITIONS, N = 400, 80  # 400 test sets of 80 pairs: a coverage of 0.95 is measured to within about +-0.02


def coverage(draw, true_value: float, interval, **kwargs) -> float:
    """The share of REPETITIONS synthetic test sets whose interval holds the true value."""
    generator = torch.Generator().manual_seed(1234)
    hits = 0
    for _ in range(REPETITIONS):
        found = interval(*draw(generator), **kwargs)
        hits += found.low <= true_value <= found.high
    return hits / REPETITIONS


def exponential_losses(generator):
    """Per-pair loss sums over 1-3 target tokens, each token's loss exponential with mean 1: a skewed
    distribution like real cross-entropies; the true loss per token is 1."""
    tokens = torch.randint(1, 4, (N,), generator=generator).double()
    per_token = -torch.log(torch.rand((N, 3), generator=generator, dtype=torch.float64))
    loss = (per_token * (torch.arange(3) < tokens[:, None])).sum(1)
    return loss, tokens


def bernoulli(generator, p: float = 0.374):
    return ((torch.rand(N, generator=generator, dtype=torch.float64) < p).double(),)


def test_the_loss_interval_covers_the_true_loss_per_token_at_its_nominal_rate():
    assert 0.91 <= coverage(exponential_losses, 1.0, ratio_interval) <= 0.98


def test_the_accuracy_interval_covers_the_true_accuracy_at_its_nominal_rate():
    assert 0.91 <= coverage(bernoulli, 0.374, mean_interval) <= 0.98


def test_the_coverage_check_fails_a_wrong_interval():
    """The same check catches an interval that is too narrow (a 50% one labelled 95%) and one that
    resamples too few pairs (too wide), so passing it above means something."""
    assert coverage(bernoulli, 0.374, mean_interval, level=0.5) < 0.91
    assert coverage(exponential_losses, 1.0, ratio_interval, level=0.5) < 0.91

    def too_wide(values, level=0.95):  # resampling a quarter as many pairs: an interval twice as wide
        means = resampled_means(values[: N // 4], torch.ones(N // 4, dtype=torch.float64))
        centre = float(values.mean())
        low, high = torch.quantile(means - means.mean(), torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
        return Interval(centre + low, centre + high)

    assert coverage(bernoulli, 0.374, too_wide) > 0.98


def test_a_rerun_gives_the_same_interval_and_it_holds_the_estimate():
    values = bernoulli(torch.Generator().manual_seed(5))[0]
    first, again = mean_interval(values), mean_interval(values.clone())
    assert first == again
    assert first.low < float(values.mean()) < first.high
    assert mean_interval(torch.ones(10)) == Interval(1.0, 1.0)  # nothing varies: a point


def test_resampling_is_one_matrix_of_pairs_not_a_loop(monkeypatch):
    """1,000 resamples of the ratio: sums of drawn pairs over sums of their tokens (pairs, not tokens)."""
    one_block.cache_clear()  # drawn afresh here, not reused from an earlier test
    calls = []
    real = torch.randint
    monkeypatch.setattr(torch, "randint", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    loss, tokens = torch.tensor([2.0, 9.0]), torch.tensor([1.0, 3.0])
    means = resampled_means(loss, tokens)
    assert calls == [(1000, 2)]
    # each resample of two pairs is one of: both first (2/1), both second (9/3), one of each (11/4)
    assert set(torch.round(means, decimals=6).tolist()) <= {2.0, 3.0, 2.75}


@pytest.mark.parametrize(
    "value, interval, text",
    [(1.967, Interval(1.9012, 2.0349), "1.967 [1.90, 2.03]"), (None, None, "–"), (2.0, None, "2.000")],
)
def test_a_loss_is_written_with_its_interval(value, interval, text):
    assert loss_text(value, interval) == text


def test_an_accuracy_is_written_with_its_interval_in_percent():
    assert accuracy_text(0.374, Interval(0.348, 0.401)) == "37.4% [34.8, 40.1]"
    assert accuracy_text(0.05) == "5.0%"


def test_gathered_per_pair_values_come_back_in_one_process_order(monkeypatch):
    """Under data parallelism each process scores every world_size-th pair; gathered, the per-pair values
    are put back in the list's order, so the interval is the same whatever the number of processes."""
    import promptgrad.model.distributed as distributed
    from promptgrad.model.distributed import Processes

    values = torch.arange(7, dtype=torch.float64)[:, None] * torch.tensor([[1.0, 10.0]])  # 7 pairs, 2 columns
    group = Processes(rank=1, world_size=3)

    def all_gather(parts, mine):  # what the other processes hold: their shares, padded to the longest
        for rank, part in enumerate(parts):
            share = Processes(rank, 3).share(list(values))
            part.zero_()
            part[: len(share)] = torch.stack(share)

    monkeypatch.setattr(distributed.dist, "all_gather", all_gather)
    mine = torch.stack(group.share(list(values)))
    assert torch.equal(group.gather(mine, 7), values)


# ---- an interval of the mean over seeds (over_seeds.py) -------------------------------------------------


@pytest.mark.parametrize("df, t", [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (9, 2.2622), (30, 2.0423)])
def test_students_t_quantile_matches_the_printed_tables(df, t):
    from promptgrad.readout.over_seeds import t_quantile

    assert t_quantile(0.95, df) == pytest.approx(t, abs=1e-4)


def test_the_interval_of_the_mean_over_seeds_is_the_t_interval_by_hand():
    import math
    import statistics

    from promptgrad.readout.over_seeds import mean_interval_over_seeds

    values = [1.0, 1.4, 1.3]  # mean 1.2333, sd 0.2082; t(0.975, 2) = 4.3027
    found = mean_interval_over_seeds(values)
    half = 4.302652729749 * statistics.stdev(values) / math.sqrt(3)
    assert (found.low, found.high) == pytest.approx((statistics.fmean(values) - half, statistics.fmean(values) + half))
    assert mean_interval_over_seeds([1.0]) is None  # one seed: no spread to go by
    assert mean_interval_over_seeds([1.0, float("nan")]) is None
