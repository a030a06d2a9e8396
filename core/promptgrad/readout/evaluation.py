"""Evaluation of a prompt on held-out pairs: test loss, greedy accuracy, each pair's answer, predictions.

Nothing here builds a gradient graph. **Accuracy** is one rule on text, everywhere (answer_rule.py):
the greedy answer, decoded, begins with the target and what follows does not continue its last word.

**Scoring** (`scoring`) needs no generation loop for most pairs. One teacher-forced forward pass over
context + target gives the loss, and its argmaxes are the greedy answer for as long as they agree with
the target's tokens: where they first differ, the greedy answer's beginning is known (the target's
tokens up to there, then the argmax), and where they never do, it is the target followed by the argmax
after it. That beginning, decoded, is judged by the rule when it settles the matter (a first token that
is another word: wrong; the target then a space or a full stop: right). Only the rest fall back to real
greedy generation, exactly as the predictions run it: an answer the model spelled with other tokens than
the target's (` Newsp` + `aper` for ` Newspaper`), or a target followed by a lone `-`, `'` or the end of
a token that does not yet show whether the word goes on. Their generation stops as soon as the rule
can judge what was written (most often a token or two). PromptScore.generated and .generation_seconds
say how many there were and what they took; benchmarks/accuracy_rule.py measures it on a real model.

**Each pair's answer** (PairScore.answer, pair_scores.jsonl) is the greedy answer as far as scoring read
it, decoded, the template's space before the answer included: for a pair judged in the one pass, the
target's tokens as far as the model followed them, then its own next token (enough to judge it, and the
whole of most wrong answers' first word); for a pair that fell back, the generated answer as far as the
rule needed it (at most its first line). Generating every pair's whole answer would cost a generation
loop for every pair at every evaluation (on SmolLM2 about 1.7x the whole scoring: see
benchmarks/accuracy_rule.py); `promptgrad predict` gives whole answers on demand.

The **predictions** shown to people (the run's sample rows, `promptgrad predict`, the probe) run real
greedy generation with a KV cache and show the whole answer the model wrote, up to the end of its line
or of the text, and mark it by the same rule.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import torch

from promptgrad.events import Prediction
from promptgrad.model.distributed import Processes
from promptgrad.model.models import FrozenModel
from promptgrad.model.objective import cross_entropy_per_row, embed_with_prompt, target_logits
from promptgrad.model.prefix_cache import model_inputs, reuse_cache
from promptgrad.model.template import TemplateEncoder
from promptgrad.problem.pairs import Pair, Split
from promptgrad.readout.answer_rule import AnswerRule
from promptgrad.readout.intervals import Interval, mean_interval, ratio_interval

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
    generated: int = 0  # pairs the one pass could not judge, whose answers were generated (the fallback's count)
    generation_seconds: float = 0.0  # ... and what generating them took (this process's share)


@dataclass(frozen=True)
class FirstPass:
    """What the teacher-forced pass tells of one pair's greedy answer."""

    ids: list[int]  # the greedy answer's first tokens, as far as they are known
    text: str  # those tokens decoded, cut at a line's end
    right: bool | None  # by the rule; None: the beginning does not settle it


def decoded(tokenizer, ids: list[int]) -> str:
    """Token ids as text, exactly: special tokens left out, no clean-up of spaces (GPT-2's tokenizer would
    otherwise turn " ." into ".")."""
    return tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def first_pass(tokenizer, target: list[int], greedy: list[int], target_text: str, rule: AnswerRule) -> FirstPass:
    """`greedy`: the argmaxes at the target's positions and the one after (len(target) + 1). The greedy
    answer follows the target while the argmaxes spell it; at the first that differs (or after the
    target) the model writes that argmax, so up to there the answer is known."""
    k = next((j for j, (g, t) in enumerate(zip(greedy, target)) if g != t), len(target))
    ids = target[:k] + [greedy[k]]
    text = decoded(tokenizer, ids)
    complete = bool(ends_line(tokenizer)[greedy[k]]) or "\n" in text
    text = text.split("\n")[0]
    return FirstPass(ids, text, rule.verdict(text, target_text, complete))


def scoring(
    frozen: FrozenModel,
    encoder: TemplateEncoder,
    pairs: list[Pair],
    prompt: torch.Tensor,
    batch_size: int,
    processes: Processes = Processes(),
    rule: AnswerRule = AnswerRule(),
    judge: bool = True,
) -> Generator[tuple[int, int], None, PromptScore]:
    """Mean cross-entropy per target token, and greedy accuracy by the text rule, each with its bootstrap
    interval, and each pair's result, as a generator that yields (pairs done, pairs in all) after each
    batch and returns the PromptScore, so that a caller can show progress and stop between batches.

    The forward passes come first, their losses and argmaxes kept on the device (one host sync after
    them); then the pairs the one pass cannot judge are generated (module docstring), batch by batch,
    and counted into the progress. Under data parallelism each process scores its share of the pairs
    and the per-pair values (the answers' token ids among them) are gathered, so every process returns
    the same PromptScore. `judge=False` gives the loss alone (a hard search's held-out loss of each
    candidate prompt): no answers are read, the accuracy is NaN and `pairs` empty."""
    tokenizer = frozen.tokenizer
    encoded = [encoder.encode(p.x, p.y) for p in pairs]
    order = sorted(range(len(pairs)), key=lambda i: len(encoded[i].context) + len(encoded[i].target))  # little padding
    mine = processes.share(order)
    width = max((len(e.target) for e in encoded), default=0) + 1  # argmaxes kept: the target's positions and the next
    losses = torch.zeros((len(mine), 2), dtype=torch.float64, device=frozen.device)  # loss sum, target tokens
    greedy = torch.zeros((len(mine), width), dtype=torch.long, device=frozen.device)  # right-aligned, as the targets
    world = max(1, processes.world_size)
    for i in range(0, len(mine), batch_size):
        with torch.inference_mode():
            batch = encoder.collate([encoded[j] for j in mine[i : i + batch_size]], inputs="score").to(frozen.device)
            T = batch.target_ids.shape[1]
            logits = target_logits(frozen, batch, prompt, n_logits=T + 1)
            s, n = cross_entropy_per_row(logits[:, :T], batch)
            losses[i : i + len(s)] = torch.stack([s.double(), n.double()], 1).to(losses.device)
            greedy[i : i + len(s), width - T - 1 :] = logits.argmax(-1).to(greedy.device)
        yield min(len(mine), i + batch_size) * world, len(pairs)
    if not judge:
        loss, tokens = processes.gather(losses, len(pairs)).cpu().unbind(1)
        return PromptScore(
            float(loss.sum() / tokens.sum()),
            math.nan,
            len(pairs),
            ratio_interval(loss, tokens),
            Interval(math.nan, math.nan),
        )
    greedy_rows = greedy.tolist()
    judged: list[FirstPass] = []
    for r, j in enumerate(mine):
        target = encoded[j].target
        judged.append(
            first_pass(tokenizer, target, greedy_rows[r][width - len(target) - 1 :], decoded(tokenizer, target), rule)
        )
    undecided = [r for r, f in enumerate(judged) if f.right is None]
    started = time.perf_counter()
    for i in range(0, len(undecided), batch_size):
        rows = undecided[i : i + batch_size]
        targets = [decoded(tokenizer, encoded[mine[r]].target) for r in rows]
        longest = max(len(encoded[mine[r]].target) for r in rows)

        def judged_already(
            k: int, ids: list[int], targets: list[str] = targets
        ) -> bool:  # no further than the rule needs
            return rule.verdict(first_line(tokenizer, ids)[1], targets[k], complete=False) is not None

        answers = greedy_answers(
            frozen,
            encoder,
            [pairs[mine[r]].x for r in rows],
            prompt,
            batch_size,
            enough=judged_already,
            limit=longest + 2,
        )
        for r, answer, target_text in zip(rows, answers, targets):
            right = rule.verdict(answer.written, target_text, complete=False)
            if right is None:  # the line (or the text) ended, or the generation's limit came: judged as it is
                right = rule.is_right(answer.written, target_text)
            judged[r] = FirstPass(answer.line_ids, answer.written, right)
        yield len(pairs) + min(len(undecided), i + batch_size) * world, len(pairs) + len(undecided) * world
    generation_seconds = time.perf_counter() - started
    answer_width = max(
        MAX_ANSWER_TOKENS, width + 1
    )  # the longest answer read: a generated one, or a target and one more
    return gathered_score(
        frozen, pairs, mine, losses, judged, answer_width, processes, len(undecided) * world, generation_seconds
    )


def gathered_score(
    frozen: FrozenModel,
    pairs: list[Pair],
    mine: list[int],
    losses: torch.Tensor,
    judged: list[FirstPass],
    answer_width: int,
    processes: Processes,
    generated: int,
    generation_seconds: float,
) -> PromptScore:
    """The PromptScore of all the pairs from each process's share (one process: its own). The answers
    travel as token ids (a collective moves tensors, not text) and are decoded on every process. The
    intervals resample the pairs in the order scored (by length), as they always have; `pairs` of the
    result are in the order given."""
    width = answer_width  # the same on every process: the collective wants equal shapes
    rows = torch.full((len(mine), width + 2), -1, dtype=torch.long)  # pair index, rightness, then the answer's ids
    for r, (j, f) in enumerate(zip(mine, judged)):
        rows[r, 0], rows[r, 1] = j, int(bool(f.right))
        rows[r, 2 : 2 + len(f.ids)] = torch.tensor(f.ids, dtype=torch.long)
    loss, tokens = processes.gather(losses, len(pairs)).cpu().unbind(1)
    gathered = processes.gather(rows.to(frozen.device), len(pairs)).cpu()
    right = gathered[:, 1].double()
    results: list[PairScore | None] = [None] * len(pairs)
    for row, pair_loss, pair_tokens in zip(gathered.tolist(), loss.tolist(), tokens.tolist()):
        ids = [t for t in row[2:] if t >= 0]
        results[row[0]] = PairScore(
            pairs[row[0]].x,
            pairs[row[0]].y,
            decoded(frozen.tokenizer, ids).split("\n")[0],
            bool(row[1]),
            pair_loss,
            int(pair_tokens),
        )
    return PromptScore(
        float(loss.sum() / tokens.sum()),
        float(right.sum()) / len(pairs),
        len(pairs),
        ratio_interval(loss, tokens),
        mean_interval(right),
        tuple(results),
        generated,
        generation_seconds,
    )


def score_prompt(
    frozen: FrozenModel,
    encoder: TemplateEncoder,
    pairs: list[Pair],
    prompt: torch.Tensor,
    batch_size: int,
    processes: Processes = Processes(),
    rule: AnswerRule = AnswerRule(),
    judge: bool = True,
) -> PromptScore:
    """`scoring` run to the end, for callers that need no progress."""
    steps = scoring(frozen, encoder, pairs, prompt, batch_size, processes, rule, judge)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


@dataclass(frozen=True)
class Answer:
    ids: list[int]  # the tokens written greedily after the context (up to the end of the line, at most a limit)
    text: str  # the answer as shown: its first line, stripped
    written: str = (
        ""  # the first line exactly as decoded (the template's space before it included): what the rule judges
    )
    line_ids: list[int] = field(default_factory=list)  # the tokens of that line (the one that ends it included)


@torch.inference_mode()
def greedy_answers(
    frozen: FrozenModel,
    encoder: TemplateEncoder,
    xs: list[str],
    prompt: torch.Tensor,
    batch_size: int,
    min_tokens: int = 0,
    enough: Callable[[int, list[int]], bool] | None = None,
    limit: int = 0,
) -> list[Answer]:
    """What the model writes after each context, decoding greedily, until every row has ended its line
    (or the text), and at least `min_tokens` tokens (enough to check a target and the token after it).
    `enough(i, ids)`, if given, says that the tokens `ids` written so far for xs[i] are all that is wanted
    (scoring: the rule can judge them): a batch stops once every row has ended or had enough. At most
    `limit` tokens (or MAX_ANSWER_TOKENS, or `min_tokens`, whichever is more)."""
    tokenizer = frozen.tokenizer
    ends = ends_line(tokenizer).to(frozen.device)
    answers: list[Answer] = []
    for i in range(0, len(xs), batch_size):
        batch = encoder.collate([encoder.encode(x, "_") for x in xs[i : i + batch_size]], inputs="context").to(
            frozen.device
        )
        attention, positions = batch.attention_mask, batch.position_ids
        out = frozen.model(
            **model_inputs(frozen, batch, embed_with_prompt(frozen, batch, prompt)), use_cache=True, logits_to_keep=1
        )
        generated, ended = [], torch.zeros(len(attention), dtype=torch.bool, device=frozen.device)
        for n in range(max(MAX_ANSWER_TOKENS, min_tokens, limit)):
            token = out.logits[:, -1].argmax(-1)
            generated.append(token)
            ended |= ends[token]
            if enough is not None:
                rows = torch.stack(generated, 1).tolist()
                ended |= torch.tensor([enough(i + r, row) for r, row in enumerate(rows)], device=ended.device)
            if n + 1 >= min_tokens and bool(ended.all()):
                break
            attention = torch.cat([attention, attention.new_ones((len(token), 1))], dim=1)
            positions = positions[:, -1:] + 1
            out = frozen.model(
                input_ids=token[:, None],
                attention_mask=attention,
                position_ids=positions,
                use_cache=True,
                **reuse_cache(out),
            )
        for row in torch.stack(generated, 1).tolist():
            ids, written = first_line(tokenizer, row)
            answers.append(Answer(row, written.strip(), written, ids))
    return answers


def first_line(tokenizer, ids: list[int]) -> tuple[list[int], str]:
    """The tokens of an answer's first line (the one that ends it included: its text before the newline
    counts, ".\n" say) and that line decoded; nothing after an end of text is read."""
    ends = ends_line(tokenizer)
    line = next((k + 1 for k, t in enumerate(ids) if ends[t]), len(ids))
    return ids[:line], decoded(tokenizer, ids[:line]).split("\n")[0]


def ends_line(tokenizer) -> torch.Tensor:
    """Bool [vocab]: does this token end the answer (end of text, or a newline in it)? Kept on the tokenizer."""
    table = getattr(tokenizer, "_promptgrad_ends_line", None)
    if table is None:
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        special = set(tokenizer.all_special_ids)
        table = torch.tensor([i in special or "\n" in t for i, t in enumerate(texts)])
        tokenizer._promptgrad_ends_line = table
    return table


def wrote_target(tokenizer, generated: list[int], target: list[int], rule: AnswerRule = AnswerRule()) -> bool:
    """The accuracy rule on generated tokens: their first line, decoded, against the target's tokens,
    decoded (answer_rule.py: on text, however either is split into tokens)."""
    return rule.is_right(first_line(tokenizer, generated)[1], decoded(tokenizer, target))


def predictions(
    frozen: FrozenModel,
    encoder: TemplateEncoder,
    pairs: list[Pair],
    prompt: torch.Tensor,
    rule: AnswerRule = AnswerRule(),
) -> list[Prediction]:
    """Each pair's whole greedy answer, marked right by the rule that scores accuracy."""
    if not pairs:
        return []
    targets = [encoder.encode(p.x, p.y).target for p in pairs]
    answers = greedy_answers(frozen, encoder, [p.x for p in pairs], prompt, len(pairs), max(map(len, targets)) + 2)
    tokenizer = frozen.tokenizer
    return [
        Prediction(p.x, p.y, a.text, rule.is_right(a.written, decoded(tokenizer, t)))
        for p, a, t in zip(pairs, answers, targets)
    ]


@dataclass(frozen=True)
class Judged:
    """One input's greedy answer, and, when the input is an x of the run's data, what was expected."""

    answer: Answer
    expected: tuple[tuple[str, str], ...]  # (y, side: test, train or validation) of each data pair with this x
    right: bool | None  # by the rule, against any of the expected ys; None: the input is no pair's x


def expected_answers(split: Split, x: str) -> tuple[tuple[str, str], ...]:
    """The ys the run's data pairs give for input `x`, each with the side of the split it lies on."""
    sides = (("test", split.test), ("train", split.train), ("validation", split.validation))
    return tuple((p.y, side) for side, pairs in sides for p in pairs if p.x == x)


def judged_answers(
    frozen: FrozenModel,
    encoder: TemplateEncoder,
    xs: list[str],
    prompt: torch.Tensor,
    batch_size: int,
    split: Split,
    rule: AnswerRule = AnswerRule(),
) -> list[Judged]:
    """Whole greedy answers for any inputs (`promptgrad predict`, the probe), each marked by the accuracy
    rule where the input is an x of the run's data (right if it is right for any of that x's ys)."""
    expected = [expected_answers(split, x) for x in xs]
    targets = [[decoded(frozen.tokenizer, encoder.encode(x, y).target) for y, _ in ys] for x, ys in zip(xs, expected)]
    longest = max((len(encoder.encode(x, y).target) for x, ys in zip(xs, expected) for y, _ in ys), default=0)
    answers = greedy_answers(frozen, encoder, xs, prompt, batch_size, longest + 2 if longest else 0)
    return [
        Judged(a, ys, any(rule.is_right(a.written, t) for t in texts) if ys else None)
        for a, ys, texts in zip(answers, expected, targets)
    ]
