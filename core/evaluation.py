"""Evaluation of a prompt on held-out pairs: test loss, greedy accuracy, sample predictions.

Nothing here builds a gradient graph. **Accuracy**, one rule everywhere: decoding greedily, the model
writes the whole target, token for token and case as written ("New Delhi", "Afghani (AFN)",
"dépendant"), and the token after it does not continue its last word (a space, punctuation, a newline
or the end of text follows). Scoring needs no generation loop for that: teacher-forced, the argmax at
every target position is the target token and the argmax after the last one does not continue the
word, so one forward pass over context + target gives both the loss and the accuracy. (A greedy output
that spells the target with other tokens counts as wrong; BPE rarely does that.)

The **predictions** shown to people (the run's sample rows, `promptgrad predict`, the probe) run real
greedy generation with a KV cache and show the whole answer the model wrote, up to the end of its line
or of the text, and mark it by the same rule, applied to the generated tokens.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import torch

from promptgrad.distributed import Processes
from promptgrad.events import Prediction
from promptgrad.intervals import Interval, mean_interval, ratio_interval
from promptgrad.models import FrozenModel
from promptgrad.objective import cross_entropy_per_row, embed_with_prompt, target_logits
from promptgrad.pairs import Pair
from promptgrad.prefix_cache import model_inputs, reuse_cache
from promptgrad.template import TemplateEncoder

MAX_ANSWER_TOKENS = 20  # a whole answer of a few words; generation also stops at the end of a line or of the text


@dataclass(frozen=True)
class PairScore:
    """One test pair under one prompt: what the model wrote and how it was judged (pair_scores.jsonl)."""

    x: str
    y: str
    answer: str  # the greedy answer as the model wrote it (decoded text)
    right: bool  # by the accuracy rule
    loss: float  # cross-entropy summed over the target's tokens
    tokens: int  # the target's tokens


@dataclass(frozen=True)
class PromptScore:
    test_loss: float
    accuracy: float
    n_pairs: int
    loss_interval: Interval  # bootstrap over the pairs (intervals.py)
    accuracy_interval: Interval
    pairs: tuple[PairScore, ...] = ()  # each pair's result, in the order of the pairs scored


def continues_word(tokenizer) -> torch.Tensor:
    """Bool [vocab]: does this token, written right after a word, make the word longer? (Computed once
    per tokenizer and kept on it.)"""
    table = getattr(tokenizer, "_promptgrad_continues_word", None)
    if table is None:
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        table = torch.tensor([bool(t) and (t[0].isalnum() or t[0] in "-'") for t in texts])
        tokenizer._promptgrad_continues_word = table
    return table


def scoring(frozen: FrozenModel, encoder: TemplateEncoder, pairs: list[Pair], prompt: torch.Tensor, batch_size: int,
            processes: Processes = Processes()) -> Generator[tuple[int, int], None, PromptScore]:
    """Mean cross-entropy per target token, and greedy first-word exact-match accuracy, each with its
    bootstrap interval, as a generator that yields (pairs done, pairs in all) after each batch and
    returns the PromptScore, so that a caller can show progress and stop between batches. Each pair's
    loss sum, target tokens and rightness are kept (the intervals resample pairs), on the device until
    the end: one host sync. Under data parallelism each process scores its share of the pairs and the
    per-pair values are gathered."""
    extends = continues_word(frozen.tokenizer).to(frozen.device)
    encoded = sorted((encoder.encode(p.x, p.y) for p in pairs), key=lambda e: len(e.context) + len(e.target))
    encoded = processes.share(encoded)
    per_pair = torch.zeros((len(encoded), 3), dtype=torch.float64, device=frozen.device)  # loss sum, target tokens, right
    for i in range(0, len(encoded), batch_size):  # sorted by length: little padding
        with torch.inference_mode():
            batch = encoder.collate(encoded[i : i + batch_size], inputs="score").to(frozen.device)
            T = batch.target_ids.shape[1]
            logits = target_logits(frozen, batch, prompt, n_logits=T + 1)
            s, n = cross_entropy_per_row(logits[:, :T], batch)
            greedy = logits.argmax(-1)
            spelled = ((greedy[:, :T] == batch.target_ids.to(greedy.device)) | ~batch.target_mask.to(greedy.device)).all(1)
            right = spelled & ~extends.to(greedy.device)[greedy[:, T]]
            per_pair[i : i + len(s)] = torch.stack([s.double(), n.double(), right.double()], 1).to(per_pair.device)
        yield min(len(encoded), i + batch_size) * max(1, processes.world_size), len(pairs)
    loss, tokens, right = processes.gather(per_pair, len(pairs)).cpu().unbind(1)
    return PromptScore(float(loss.sum() / tokens.sum()), float(right.sum()) / len(pairs), len(pairs),
                       ratio_interval(loss, tokens), mean_interval(right))


def score_prompt(frozen: FrozenModel, encoder: TemplateEncoder, pairs: list[Pair], prompt: torch.Tensor, batch_size: int,
                 processes: Processes = Processes()) -> PromptScore:
    """`scoring` run to the end, for callers that need no progress."""
    steps = scoring(frozen, encoder, pairs, prompt, batch_size, processes)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


@dataclass(frozen=True)
class Answer:
    ids: list[int]  # the tokens written greedily after the context (up to the end of the line, at most a limit)
    text: str  # the answer as written: those tokens decoded, without the end of line, stripped


@torch.inference_mode()
def greedy_answers(frozen: FrozenModel, encoder: TemplateEncoder, xs: list[str], prompt: torch.Tensor, batch_size: int,
                   min_tokens: int = 0) -> list[Answer]:
    """What the model writes after each context, decoding greedily, until every row has ended its line
    (or the text), and at least `min_tokens` tokens (enough to check a target and the token after it)."""
    tokenizer = frozen.tokenizer
    ends = ends_line(tokenizer).to(frozen.device)
    answers: list[Answer] = []
    for i in range(0, len(xs), batch_size):
        batch = encoder.collate([encoder.encode(x, "_") for x in xs[i : i + batch_size]], inputs="context").to(frozen.device)
        attention, positions = batch.attention_mask, batch.position_ids
        out = frozen.model(**model_inputs(frozen, batch, embed_with_prompt(frozen, batch, prompt)), use_cache=True, logits_to_keep=1)
        generated, ended = [], torch.zeros(len(attention), dtype=torch.bool, device=frozen.device)
        for n in range(max(MAX_ANSWER_TOKENS, min_tokens)):
            token = out.logits[:, -1].argmax(-1)
            generated.append(token)
            ended |= ends[token]
            if n + 1 >= min_tokens and bool(ended.all()):
                break
            attention = torch.cat([attention, attention.new_ones((len(token), 1))], dim=1)
            positions = positions[:, -1:] + 1
            out = frozen.model(input_ids=token[:, None], attention_mask=attention, position_ids=positions, use_cache=True,
                               **reuse_cache(out))
        for row in torch.stack(generated, 1).tolist():
            line = next((k for k, t in enumerate(row) if ends[t]), len(row))
            text = tokenizer.decode(row[:line], skip_special_tokens=True)
            answers.append(Answer(row, text.split("\n")[0].strip()))
    return answers


def ends_line(tokenizer) -> torch.Tensor:
    """Bool [vocab]: does this token end the answer (end of text, or a newline in it)? Kept on the tokenizer."""
    table = getattr(tokenizer, "_promptgrad_ends_line", None)
    if table is None:
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        special = set(tokenizer.all_special_ids)
        table = torch.tensor([i in special or "\n" in t for i, t in enumerate(texts)])
        tokenizer._promptgrad_ends_line = table
    return table


def wrote_target(tokenizer, generated: list[int], target: list[int]) -> bool:
    """The accuracy rule, on generated tokens: the target token for token, then a token that does not
    continue its last word (or nothing more: the text ended)."""
    if generated[: len(target)] != target:
        return False
    return len(generated) == len(target) or not bool(continues_word(tokenizer)[generated[len(target)]])


def predictions(frozen: FrozenModel, encoder: TemplateEncoder, pairs: list[Pair], prompt: torch.Tensor) -> list[Prediction]:
    """Each pair's whole greedy answer, marked right by the rule that scores accuracy."""
    if not pairs:
        return []
    targets = [encoder.encode(p.x, p.y).target for p in pairs]
    answers = greedy_answers(frozen, encoder, [p.x for p in pairs], prompt, len(pairs), max(map(len, targets)) + 1)
    return [Prediction(p.x, p.y, a.text, wrote_target(frozen.tokenizer, a.ids, t)) for p, a, t in zip(pairs, answers, targets)]
