"""Paired comparisons (core/promptgrad/readout/paired.py): the learned prompt against a baseline on the same pairs, checked
against hand computations: the difference, McNemar's exact p-value, and the paired bootstrap interval
recomputed by an explicit loop over the very resample indices intervals.py draws."""

from __future__ import annotations

import json

import pytest
import torch

from promptgrad.errors import UserError
from promptgrad.readout.intervals import RESAMPLES, SEED
from promptgrad.readout.paired import PairOutcome, compare, mcnemar_exact_p, read_pair_scores


def outcomes(prompt: str, rights: list[int], losses: list[float | None], tokens: list[int]) -> list[PairOutcome]:
    return [
        PairOutcome(prompt, "", f"x{i}", f"y{i}", "a", bool(r), loss, t)
        for i, (r, loss, t) in enumerate(zip(rights, losses, tokens))
    ]


# 8 pairs. learned right on 0,1,2,3,4,5; baseline right on 0,1,6. Discordant: b = 4 (2,3,4,5), c = 1 (6).
LEARNED = outcomes(
    "learned", [1, 1, 1, 1, 1, 1, 0, 0], [0.5, 1.0, 0.2, 0.4, 0.3, 0.6, 2.0, 3.0], [1, 2, 1, 1, 1, 2, 1, 3]
)
BASELINE = outcomes(
    "hand-written", [1, 1, 0, 0, 0, 0, 1, 0], [1.5, 2.0, 1.2, 3.4, 0.9, 1.6, 1.0, 4.0], [1, 2, 1, 1, 1, 2, 1, 3]
)


def test_mcnemar_exact_p_is_the_two_sided_binomial_tail_by_hand():
    # b=4, c=1: 5 discordant pairs; P(X <= 1) under Binomial(5, 1/2) = (1 + 5) / 32; two-sided: 12/32
    assert mcnemar_exact_p(4, 1) == pytest.approx(12 / 32)
    assert mcnemar_exact_p(1, 4) == pytest.approx(12 / 32)  # symmetric
    assert mcnemar_exact_p(10, 0) == pytest.approx(2 / 1024)  # all one way
    assert mcnemar_exact_p(3, 3) == 1.0  # capped at 1
    assert mcnemar_exact_p(0, 0) == 1.0  # no discordant pair: no evidence either way


def test_the_difference_and_the_discordant_counts_match_a_hand_computation():
    result = compare(
        LEARNED, list(reversed(BASELINE)), "hand-written ' antonyms'"
    )  # order does not matter: pairs are matched
    assert result.n_pairs == 8 and result.baseline == "hand-written ' antonyms'"
    assert result.accuracy_difference == pytest.approx(6 / 8 - 3 / 8)
    assert (result.learned_only_right, result.baseline_only_right) == (4, 1)
    assert result.mcnemar_p == pytest.approx(12 / 32)
    # test loss: summed loss over summed tokens, per prompt (12 tokens each)
    assert result.loss_difference == pytest.approx(8.0 / 12 - 15.6 / 12)


def test_the_bootstrap_interval_is_that_of_an_explicit_loop_over_the_same_resamples():
    """intervals.py draws a [RESAMPLES, n] matrix of indices from torch.Generator(SEED); both prompts are
    evaluated on each row's pairs, and the interval is the central 95% of the row-wise differences."""
    result = compare(LEARNED, BASELINE, "b")
    n = len(LEARNED)
    index = torch.randint(n, (RESAMPLES, n), generator=torch.Generator().manual_seed(SEED))
    accuracy, loss = [], []
    for row in index.tolist():
        right = lambda side: sum(side[i].right for i in row) / n  # noqa: E731
        ratio = lambda side: sum(side[i].loss for i in row) / sum(side[i].tokens for i in row)  # noqa: E731
        accuracy.append(right(LEARNED) - right(BASELINE))
        loss.append(ratio(LEARNED) - ratio(BASELINE))

    def central(values):
        low, high = torch.quantile(
            torch.tensor(values, dtype=torch.float64), torch.tensor([0.025, 0.975], dtype=torch.float64)
        )
        return float(low), float(high)

    assert (result.accuracy_interval.low, result.accuracy_interval.high) == pytest.approx(central(accuracy), abs=1e-12)
    assert (result.loss_interval.low, result.loss_interval.high) == pytest.approx(central(loss), abs=1e-12)
    # paired: narrower than what two independent intervals would suggest, and it holds the estimate
    assert result.accuracy_interval.low <= result.accuracy_difference <= result.accuracy_interval.high


def test_a_baseline_without_loss_has_no_loss_difference_and_pairs_must_match():
    majority = outcomes("majority", [0, 0, 0, 0, 0, 0, 0, 1], [None] * 8, [1, 2, 1, 1, 1, 2, 1, 3])
    result = compare(LEARNED, majority, "majority")
    assert result.loss_difference is None and result.loss_interval is None
    assert (result.learned_only_right, result.baseline_only_right) == (6, 1)
    assert result.mcnemar_p == pytest.approx(2 * 8 / 128)
    with pytest.raises(UserError, match="not scored on the same pairs"):
        compare(LEARNED, BASELINE[:-1], "b")


def test_pair_scores_are_read_by_prompt_and_a_damaged_line_is_named(tmp_path):
    path = tmp_path / "pair_scores.jsonl"
    rows = [
        {
            "prompt": p.prompt,
            "text": p.text,
            "x": p.x,
            "y": p.y,
            "answer": p.answer,
            "right": p.right,
            "loss": p.loss,
            "tokens": p.tokens,
        }
        for p in (*LEARNED, *BASELINE)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    scores = read_pair_scores(path)
    assert list(scores) == [("learned", ""), ("hand-written", "")] and scores[("learned", "")] == LEARNED
    path.write_text(path.read_text() + '{"prompt": "learned", "right": "yes"}\n')
    with pytest.raises(UserError, match=f"line {len(rows) + 1} is not a per-pair result"):
        read_pair_scores(path)
    link = tmp_path / "link.jsonl"
    link.symlink_to(path)
    with pytest.raises(UserError, match="symbolic link"):
        read_pair_scores(link)
