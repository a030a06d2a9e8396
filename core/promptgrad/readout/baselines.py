"""The baselines that are not a prompt of their own: the majority answer and k-shot demonstrations.

A learned prompt is only worth its test loss if it beats what needs no learning. Beside the
hand-written and the untrained prompt (session.py), a run is compared with:

- **majority**: always answer the most common target of the training pairs (ties: the first in sorted
  order). Its accuracy is the share of test pairs whose y is exactly that answer; it is not a language
  model, so it has no test loss. Where no answer repeats among the training pairs there is no most
  common one, only the first in sorted order ("Aardvark", 0%): no majority row then, and
  `no_majority_reason` says so in one line instead.
- **k-shot**: `k_shot` training pairs, drawn with the run's seed (the same ones every time), written in
  the run's template with its {prompt} filled by the first hand-written prompt, one per line, before
  the query, which is the template as usual with that hand-written prompt. It is an ordinary template
  whose first literal text holds the demonstrations, so the same `scoring()` scores it as any prompt,
  and its demonstrations fall in the template's constant prefix, computed once (prefix_cache.py).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import torch

from promptgrad.model.template import Template
from promptgrad.problem.pairs import Pair
from promptgrad.readout.answer_rule import AnswerRule
from promptgrad.readout.intervals import Interval, mean_interval


@dataclass(frozen=True)
class MajorityScore:
    answer: str
    accuracy: float
    n_pairs: int
    accuracy_interval: Interval
    right: tuple[bool, ...] = ()  # each test pair: is the majority answer right for it (by the accuracy rule)


def majority_answer(train: list[Pair]) -> str:
    """The most common y among the training pairs; of several as common, the first in sorted order."""
    if not train:
        raise ValueError("the majority answer needs training pairs")
    counts = Counter(p.y for p in train)
    top = max(counts.values())
    return min(y for y, n in counts.items() if n == top)


def no_majority_reason(train: list[Pair]) -> str:
    """Why there is no majority baseline for these training pairs, in one line; "" when there is one."""
    if not train:
        return "no majority baseline: there are no training pairs to take the most common answer from"
    if max(Counter(p.y for p in train).values()) == 1:
        return (
            f"no majority baseline: no answer repeats among the {len(train)} training pairs, so none is the most "
            f"common (it would be an arbitrary pick)"
        )
    return ""


def score_majority(train: list[Pair], test: list[Pair], rule: AnswerRule = AnswerRule()) -> MajorityScore | None:
    """The majority answer's accuracy on `test`, judged as a model's answer would be (answer_rule.py): it is
    right where it begins with y and goes on with no more of y's last word ("New Delhi" for "New"; "cold"
    for "cold"). None where there is no majority answer (no_majority_reason)."""
    if no_majority_reason(train):
        return None
    answer = majority_answer(train)
    marks = tuple(rule.is_right(answer, p.y) for p in test)
    right = torch.tensor(marks, dtype=torch.float64)
    return MajorityScore(answer, float(right.mean()), len(test), mean_interval(right), marks)


def demonstrations(train: list[Pair], k: int, seed: int) -> list[Pair]:
    """`k` training pairs (all of them, if fewer), drawn with `seed`: the same ones on every call."""
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed)).tolist()
    return [train[i] for i in order[:k]]


SLOT = re.compile(r"( ?)\{(prompt|x|y)\}")


def written(template: Template, prompt_text: str, x: str, y: str) -> str:
    """One pair as the model reads it in `template`, by the encoder's rules: a space before a slot
    belongs to the slot (the prompt's text brings its own, " antonyms"; x and y get one). The slots are
    filled in one pass, so braces in x or y stay literal text."""

    def fill(match: re.Match) -> str:
        space, slot = match.groups()
        if slot == "prompt":
            return prompt_text
        return space + (x if slot == "x" else y)

    return SLOT.sub(fill, template.text)


def k_shot_template(template: Template, shown: list[Pair], prompt_text: str) -> Template:
    """`template` with the demonstrations, one per line, as literal text before it. Built from the
    template's parsed pieces, not re-parsed: the demonstrations are text, whatever braces they hold. They
    join the template's first literal piece, so they stay in its constant prefix."""
    block = "".join(written(template, prompt_text, p.x, p.y) + "\n" for p in shown)
    pieces = template.before_y
    if pieces and pieces[0] not in ("{prompt}", "{x}"):
        pieces = (block + pieces[0], *pieces[1:])
    else:
        pieces = (block, *pieces)
    return Template(block + template.text, pieces, template.y_prefix)
