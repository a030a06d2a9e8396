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


@torch.inference_mode()
def score_prompt(frozen: FrozenModel, encoder: TemplateEncoder, pairs: list[Pair], prompt: torch.Tensor, batch_size: int,
                 processes: Processes = Processes()) -> PromptScore:
    """Mean cross-entropy per target token, and greedy first-word exact-match accuracy. Under data
    parallelism each process scores its share of the pairs and the sums are gathered."""
    extends = continues_word(frozen.tokenizer)
    encoded = sorted((encoder.encode(p.x, p.y) for p in pairs), key=lambda e: len(e.context) + len(e.target))
    encoded = processes.share(encoded)
    total, count, right = 0.0, 0, 0
    for i in range(0, len(encoded), batch_size):  # sorted by length: little padding; sums don't care about order
        batch = encoder.collate(encoded[i : i + batch_size], inputs="score").to(frozen.device)
        T = batch.target_ids.shape[1]
        logits = target_logits(frozen, batch, prompt, n_logits=T + 1)
        s, n = summed_cross_entropy(logits[:, :T], batch)
        greedy = logits.argmax(-1)
        spelled = ((greedy[:, :T] == batch.target_ids.to(greedy.device)) | ~batch.target_mask.to(greedy.device)).all(1)
        right += int((spelled.cpu() & ~extends[greedy[:, T].cpu()]).sum())
        total, count = total + float(s), count + n
    total, count, right = processes.sum([total, count, right], frozen.device)
    return PromptScore(total / count, right / len(pairs), len(pairs))


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
