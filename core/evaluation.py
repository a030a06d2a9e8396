"""Evaluation of a prompt on held-out pairs: test loss, greedy accuracy, sample predictions.

Nothing here builds a gradient graph. Accuracy is the exact match of the first word the model writes
when it decodes greedily. That needs no generation loop: greedy decoding writes exactly the target
word iff, teacher-forced, the argmax at every target position is the target token *and* the argmax
after the last one does not continue the word (a space, punctuation or end of text follows). So one
forward pass over context + target gives both the loss and the accuracy. (A greedy output that spells
the same word with other tokens counts as wrong; BPE rarely does that.) The sample predictions shown to
people do run real greedy generation, with a KV cache.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from dataclasses import dataclass

import torch

from promptgrad.distributed import Processes
from promptgrad.events import Prediction
from promptgrad.models import FrozenModel
from promptgrad.objective import embed_with_prompt, summed_cross_entropy, target_logits
from promptgrad.pairs import Pair
from promptgrad.prefix_cache import model_inputs, reuse_cache
from promptgrad.template import TemplateEncoder

MAX_NEW_TOKENS = 6  # enough for a word of WordNet's length in BPE tokens; the first word is what counts
FIRST_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*")


@dataclass(frozen=True)
class PromptScore:
    test_loss: float
    accuracy: float
    n_pairs: int


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
    """Mean cross-entropy per target token, and greedy first-word exact-match accuracy, as a generator
    that yields (pairs done, pairs in all) after each batch and returns the PromptScore, so that a caller
    can show progress and stop between batches. Under data parallelism each process scores its share of
    the pairs and the sums are gathered. The sums stay on the device until the end: one host sync."""
    extends = continues_word(frozen.tokenizer).to(frozen.device)
    encoded = sorted((encoder.encode(p.x, p.y) for p in pairs), key=lambda e: len(e.context) + len(e.target))
    encoded = processes.share(encoded)
    sums = torch.zeros(3, dtype=torch.float64, device=frozen.device)  # loss, target tokens, right
    for i in range(0, len(encoded), batch_size):  # sorted by length: little padding; sums don't care about order
        with torch.inference_mode():
            batch = encoder.collate(encoded[i : i + batch_size], inputs="score").to(frozen.device)
            T = batch.target_ids.shape[1]
            logits = target_logits(frozen, batch, prompt, n_logits=T + 1)
            s, n = summed_cross_entropy(logits[:, :T], batch)
            greedy = logits.argmax(-1)
            spelled = ((greedy[:, :T] == batch.target_ids.to(greedy.device)) | ~batch.target_mask.to(greedy.device)).all(1)
            right = (spelled & ~extends.to(greedy.device)[greedy[:, T]]).sum()
            sums += torch.stack([s.double(), n.double(), right.double()]).to(sums.device)
        yield min(len(encoded), i + batch_size) * max(1, processes.world_size), len(pairs)
    processes.sum_(sums)
    total, count, right = sums.tolist()
    return PromptScore(total / count, right / len(pairs), len(pairs))


def score_prompt(frozen: FrozenModel, encoder: TemplateEncoder, pairs: list[Pair], prompt: torch.Tensor, batch_size: int,
                 processes: Processes = Processes()) -> PromptScore:
    """`scoring` run to the end, for callers that need no progress."""
    steps = scoring(frozen, encoder, pairs, prompt, batch_size, processes)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


@torch.inference_mode()
def greedy_words(frozen: FrozenModel, encoder: TemplateEncoder, xs: list[str], prompt: torch.Tensor, batch_size: int) -> list[str]:
    """The first word the model writes after each context, decoding greedily."""
    words: list[str] = []
    for i in range(0, len(xs), batch_size):
        batch = encoder.collate([encoder.encode(x, "_") for x in xs[i : i + batch_size]], inputs="context").to(frozen.device)
        attention, positions = batch.attention_mask, batch.position_ids
        out = frozen.model(**model_inputs(frozen, batch, embed_with_prompt(frozen, batch, prompt)), use_cache=True, logits_to_keep=1)
        generated = []
        for _ in range(MAX_NEW_TOKENS):
            token = out.logits[:, -1].argmax(-1)
            generated.append(token)
            attention = torch.cat([attention, attention.new_ones((len(token), 1))], dim=1)
            positions = positions[:, -1:] + 1
            out = frozen.model(
                input_ids=token[:, None],
                attention_mask=attention,
                position_ids=positions,
                use_cache=True,
                **reuse_cache(out),
            )
        texts = frozen.tokenizer.batch_decode(torch.stack(generated, 1).tolist(), skip_special_tokens=True)
        words += [first_word(t) for t in texts]
    return words


def first_word(text: str) -> str:
    match = FIRST_WORD.search(text)
    return match.group(0).lower() if match else ""


def predictions(frozen: FrozenModel, encoder: TemplateEncoder, pairs: list[Pair], prompt: torch.Tensor) -> list[Prediction]:
    if not pairs:
        return []
    words = greedy_words(frozen, encoder, [p.x for p in pairs], prompt, len(pairs))
    return [Prediction(p.x, p.y, w, w == p.y.lower()) for p, w in zip(pairs, words)]
