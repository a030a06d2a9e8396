"""A paired comparison: the learned prompt against one baseline, on the same test pairs.

Two prompts scored on the same pairs are not two independent samples: a pair that is hard for one is
usually hard for the other. Comparing their two intervals side by side (intervals.py) wastes that; the
paired comparison looks at the difference pair by pair:

- **difference in accuracy and in test loss**, learned minus baseline, with a percentile bootstrap
  interval in which each resample draws the same pairs for both prompts (intervals.py's resampled_means
  with the same seed and n draws the same counts), so the interval is of the difference itself. The test
  loss is a ratio, as everywhere: the resample's summed loss over its summed target tokens, per prompt.
  A negative loss difference and a positive accuracy difference favour the learned prompt.
- **McNemar's exact test** for accuracy: of the pairs on which the two prompts disagree (one right, the
  other wrong), how many went each way. Under "neither prompt is more accurate" each such pair is a fair
  coin, so the two-sided p-value is that of a binomial(b + c, 1/2) count as far from the middle as the
  one seen: min(1, 2 * P(X <= min(b, c))). Pairs both get right, or both wrong, say nothing about which
  is better and do not enter it.

The per-pair results come from the scorer (evaluation.py's PromptScore.pairs) or a run's
pair_scores.jsonl, one JSON object a line: {"prompt", "text", "x", "y", "answer", "right", "loss",
"tokens"}; majority's loss is null (it is not a language model, so it has no loss difference).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from promptgrad.errors import UserError
from promptgrad.files import read_text
from promptgrad.readout.intervals import LEVEL, RESAMPLES, SEED, Interval, percentile_interval, resampled_means


class PairResult(Protocol):
    """What a comparison reads of one pair under one prompt (evaluation.PairScore has it, and PairOutcome)."""

    x: str
    y: str
    right: bool
    loss: float | None
    tokens: int


@dataclass(frozen=True)
class PairOutcome:
    """One line of pair_scores.jsonl: one test pair under one prompt."""

    prompt: str  # the Evaluation event's label: learned, hand-written, k-shot, untrained, majority
    text: str  # the Evaluation event's text: a hand-written wording, "3-shot", the majority answer, ...
    x: str
    y: str
    answer: str
    right: bool
    loss: float | None  # summed over the target's tokens; None for the majority answer
    tokens: int


@dataclass(frozen=True)
class PairedComparison:
    """The learned prompt minus one baseline on the same `n_pairs` pairs."""

    baseline: str  # which baseline, as shown ("hand-written ' antonyms'", "3-shot", "majority", ...)
    n_pairs: int
    accuracy_difference: float  # learned accuracy minus baseline accuracy (a fraction: 0.05 is 5 points)
    accuracy_interval: Interval  # paired bootstrap, LEVEL
    loss_difference: float | None  # learned test loss minus baseline's; None where either has no loss
    loss_interval: Interval | None
    learned_only_right: int  # pairs the learned prompt gets right and the baseline wrong (McNemar's b)
    baseline_only_right: int  # and the other way round (c)
    mcnemar_p: float  # two-sided exact McNemar p-value for "the two are equally accurate"


def mcnemar_exact_p(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (1.0 when there are none)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n  # exact integers, then one division
    return min(1.0, 2 * tail)


def aligned(learned: Sequence[PairResult], baseline: Sequence[PairResult]) -> list[PairResult]:
    """The baseline's results in the learned prompt's order of pairs; they must be the same pairs."""
    by_pair = {(p.x, p.y): p for p in baseline}
    keys = [(p.x, p.y) for p in learned]
    if len(by_pair) != len(baseline) or len(set(keys)) != len(keys):
        raise UserError("a paired comparison needs each pair once per prompt; the per-pair results hold a pair twice")
    if set(by_pair) != set(keys):
        missing = len(set(keys) - set(by_pair)) + len(set(by_pair) - set(keys))
        raise UserError(
            f"the two prompts were not scored on the same pairs ({missing} pair(s) in one only); "
            f"a paired comparison needs the same pairs"
        )
    return [by_pair[k] for k in keys]


def compare(
    learned: Sequence[PairResult],
    baseline: Sequence[PairResult],
    label: str,
    level: float = LEVEL,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> PairedComparison:
    """The learned prompt against `baseline` (`label` names it), pair by pair; see the module's docstring."""
    if not learned:
        raise UserError("a paired comparison needs at least one pair")
    other = aligned(learned, baseline)
    right_l = torch.tensor([float(p.right) for p in learned], dtype=torch.float64)
    right_b = torch.tensor([float(p.right) for p in other], dtype=torch.float64)
    n = len(learned)
    ones = torch.ones(n, dtype=torch.float64)
    # the difference of two means over the same draws is the mean of the per-pair differences
    accuracy_draws = resampled_means(right_l - right_b, ones, resamples, seed)
    b, c = int(((right_l == 1) & (right_b == 0)).sum()), int(((right_l == 0) & (right_b == 1)).sum())
    loss_difference, loss_interval = None, None
    if all(p.loss is not None for p in (*learned, *other)):
        loss_l = torch.tensor([p.loss for p in learned], dtype=torch.float64)
        loss_b = torch.tensor([p.loss for p in other], dtype=torch.float64)
        tokens_l = torch.tensor([p.tokens for p in learned], dtype=torch.float64)
        tokens_b = torch.tensor([p.tokens for p in other], dtype=torch.float64)
        # same n and seed: the same pairs drawn for both ratios in every resample
        draws = resampled_means(loss_l, tokens_l, resamples, seed) - resampled_means(loss_b, tokens_b, resamples, seed)
        loss_difference = float(loss_l.sum() / tokens_l.sum() - loss_b.sum() / tokens_b.sum())
        loss_interval = percentile_interval(draws, level)
    return PairedComparison(
        label,
        n,
        float((right_l - right_b).mean()),
        percentile_interval(accuracy_draws, level),
        loss_difference,
        loss_interval,
        b,
        c,
        mcnemar_exact_p(b, c),
    )


# ---- pair_scores.jsonl ---------------------------------------------------------------------------------


def outcome_of(row: Any) -> PairOutcome:
    """A line's object, checked field by field (TypeError/KeyError when it is not one)."""
    if not isinstance(row, dict):
        raise TypeError("not an object")
    strings = [row[k] for k in ("prompt", "text", "x", "y", "answer")]
    loss, tokens, right = row["loss"], row["tokens"], row["right"]
    if not all(isinstance(s, str) for s in strings) or not isinstance(right, bool):
        raise TypeError("prompt, text, x, y, answer must be text and right true or false")
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        raise TypeError("tokens must be a count")
    if loss is not None and (isinstance(loss, bool) or not isinstance(loss, (int, float))):
        raise TypeError("loss must be a number or null")
    return PairOutcome(*strings, right, None if loss is None else float(loss), tokens)


def read_pair_scores(path: Path) -> dict[tuple[str, str], list[PairOutcome]]:
    """Each prompt's per-pair results in pair_scores.jsonl, by (prompt, text), in the file's order. Read
    through files.py (never a link or a FIFO); FileNotFoundError passes through (a run from before per-pair
    results has none); a damaged line is a UserError naming it."""
    text = read_text(path)
    out: dict[tuple[str, str], list[PairOutcome]] = {}
    for number, line in enumerate(text.split("\n"), 1):  # not splitlines(): a pair may hold U+2028
        if not line.strip():
            continue
        try:
            outcome = outcome_of(json.loads(line))
        except (ValueError, KeyError, TypeError, RecursionError):
            raise UserError(
                f'{path} line {number} is not a per-pair result like {{"prompt": "learned", "text": "", '
                f'"x": "hot", "y": "cold", "answer": "cold", "right": true, "loss": 0.4, '
                f'"tokens": 1}}; the file is damaged'
            ) from None
        out.setdefault((outcome.prompt, outcome.text), []).append(outcome)
    return out
