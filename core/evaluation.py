"""Evaluation of a prompt on held-out pairs: test loss, greedy accuracy, sample predictions.

Nothing here builds a gradient graph. Accuracy asks the model to continue the context greedily (with
a KV cache) and compares the first word it writes with the target.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from promptgrad.events import Prediction
from promptgrad.models import FrozenModel
from promptgrad.objective import embed_with_prompt, target_loss_sum
from promptgrad.pairs import Pair, Split
from promptgrad.template import TemplateEncoder

MAX_NEW_TOKENS = 6  # enough for a word of WordNet's length in BPE tokens; the first word is what counts
FIRST_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*")


@dataclass(frozen=True)
class PromptScore:
    test_loss: float
    accuracy: float
    n_pairs: int


@torch.inference_mode()
def test_loss(frozen: FrozenModel, encoder: TemplateEncoder, pairs: list[Pair], prompt: torch.Tensor, batch_size: int) -> float:
    total, count = 0.0, 0
    for i in range(0, len(pairs), batch_size):
        batch = encoder.collate([encoder.encode(p.x, p.y) for p in pairs[i : i + batch_size]]).to(frozen.device)
        s, n = target_loss_sum(frozen, batch, prompt)
        total, count = total + float(s), count + n
    return total / count


@torch.inference_mode()
def greedy_words(frozen: FrozenModel, encoder: TemplateEncoder, xs: list[str], prompt: torch.Tensor, batch_size: int) -> list[str]:
    """The first word the model writes after each context, decoding greedily."""
    words: list[str] = []
    for i in range(0, len(xs), batch_size):
        batch = encoder.collate([encoder.encode(x, "_") for x in xs[i : i + batch_size]], with_target=False).to(frozen.device)
        attention, positions = batch.attention_mask, batch.position_ids
        out = frozen.model(
            inputs_embeds=embed_with_prompt(frozen, batch, prompt),
            attention_mask=attention,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
        )
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
                past_key_values=out.past_key_values,
                use_cache=True,
            )
        texts = frozen.tokenizer.batch_decode(torch.stack(generated, 1).tolist(), skip_special_tokens=True)
        words += [first_word(t) for t in texts]
    return words


def first_word(text: str) -> str:
    match = FIRST_WORD.search(text)
    return match.group(0).lower() if match else ""


def score_prompt(frozen: FrozenModel, encoder: TemplateEncoder, split: Split, pairs: list[Pair], prompt: torch.Tensor, batch_size: int) -> PromptScore:
    loss = test_loss(frozen, encoder, pairs, prompt, batch_size)
    words = greedy_words(frozen, encoder, [p.x for p in pairs], prompt, batch_size)
    right = sum(split.is_correct(p.x, w) for p, w in zip(pairs, words))
    return PromptScore(loss, right / len(pairs), len(pairs))


def predictions(frozen: FrozenModel, encoder: TemplateEncoder, split: Split, pairs: list[Pair], prompt: torch.Tensor) -> list[Prediction]:
    words = greedy_words(frozen, encoder, [p.x for p in pairs], prompt, len(pairs))
    return [Prediction(p.x, p.y, w, split.is_correct(p.x, w)) for p, w in zip(pairs, words)]
