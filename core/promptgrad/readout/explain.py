"""The model's own reading of a soft prompt (Patchscopes, SelfIE): what does it say a learned vector is?

Nearest-token cosine says little about vectors that lie far from every token (the original experiment's
similarities were 0.15-0.22). Instead, each vector is put where a word stands in an identity context,
a few lines that repeat a word,

     cat -> cat
     river -> river
     ...
     [vector] ->

and the model continues greedily: what it writes after the arrow is its reading of the vector. The
whole prompt is read the same way, all its vectors in the slot. Whether this context can be trusted
is measured, not assumed: the embeddings of real single tokens, put in the same slot, should read back
as themselves; `read_back` gives the rate (a few hundred tokens, drawn with a fixed seed).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from promptgrad.model.models import FrozenModel
from promptgrad.model.prefix_cache import reuse_cache

IDENTITY_WORDS = ("cat", "river", "seven", "hello", "blue", "tree", "happy", "stone")
MAX_NEW_TOKENS = 8


@dataclass(frozen=True)
class PromptReading:
    positions: list[str]  # what the model reads at each position of the prompt
    whole: str  # ... and in all of them together


@dataclass(frozen=True)
class ReadBack:
    rate: float  # the fraction of real tokens that read back as themselves
    n: int
    misses: list[tuple[str, str]]  # a few (token, what it read as)


class IdentityContext:
    """The token ids around the slot: the identity lines before it, " ->" after it."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        tokens = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
        with_special = tokenizer("a")["input_ids"]
        bos = [with_special[0]] if len(with_special) > 1 and with_special[0] == tokenizer.bos_token_id else []
        self.before = bos + sum((tokens(f" {w} -> {w}\n") for w in IDENTITY_WORDS), [])
        self.after = tokens(" ->")

    def embeds(self, frozen: FrozenModel, slots: torch.Tensor) -> torch.Tensor:
        """[B, L, hidden]: the context around each row of `slots` [B, S, hidden]."""
        table = frozen.embedding.weight
        before = table[torch.tensor(self.before, device=frozen.device)]
        after = table[torch.tensor(self.after, device=frozen.device)]
        B = slots.shape[0]
        return torch.cat([before.expand(B, -1, -1), slots.to(table.dtype), after.expand(B, -1, -1)], dim=1)


@torch.inference_mode()
def continue_greedily(frozen: FrozenModel, embeds: torch.Tensor, max_new_tokens: int = MAX_NEW_TOKENS) -> list[str]:
    """What the model writes after each row of `embeds` (all of one length), up to the end of the line."""
    out = frozen.model(inputs_embeds=embeds.to(frozen.dtype), use_cache=True, logits_to_keep=1)
    written = []
    for _ in range(max_new_tokens):
        token = out.logits[:, -1].argmax(-1)
        written.append(token)
        out = frozen.model(input_ids=token[:, None], use_cache=True, logits_to_keep=1, **reuse_cache(out))
    texts = frozen.tokenizer.batch_decode(torch.stack(written, 1).tolist(), skip_special_tokens=True)
    return [text.split("\n")[0].strip() for text in texts]


def read_prompt(frozen: FrozenModel, vectors: torch.Tensor) -> PromptReading:
    """The model's reading of each prompt vector [P, hidden] alone, and of all of them together."""
    context = IdentityContext(frozen.tokenizer)
    vectors = vectors.detach().to(frozen.device)
    positions = continue_greedily(frozen, context.embeds(frozen, vectors[:, None]))
    whole = continue_greedily(frozen, context.embeds(frozen, vectors[None]), MAX_NEW_TOKENS + 4)[0]
    return PromptReading(positions, whole)


def word_tokens(tokenizer, vocab_size: int) -> list[int]:
    """Single tokens that are a whole word after a space (" river"): what the identity lines hold."""
    ids = list(range(min(len(tokenizer), vocab_size)))
    texts = tokenizer.batch_decode([[i] for i in ids])
    return [i for i, t in zip(ids, texts) if t.startswith(" ") and t[1:].isalpha() and t[1:].islower() and len(t) >= 4]


def read_back(frozen: FrozenModel, n: int = 200, seed: int = 0, batch: int = 50) -> ReadBack:
    """How often the embedding of a real word token, in the slot, reads back as that word."""
    context = IdentityContext(frozen.tokenizer)
    candidates = word_tokens(frozen.tokenizer, frozen.embedding.weight.shape[0])
    chosen = random.Random(seed).sample(candidates, min(n, len(candidates)))
    table = frozen.embedding.weight
    hits, misses = 0, []
    for start in range(0, len(chosen), batch):
        ids = chosen[start : start + batch]
        readings = continue_greedily(
            frozen, context.embeds(frozen, table[torch.tensor(ids, device=frozen.device)][:, None])
        )
        for token_id, reading in zip(ids, readings):
            word = frozen.tokenizer.decode([token_id]).strip()
            if reading.split(" ")[0] == word:
                hits += 1
            elif len(misses) < 8:
                misses.append((word, reading))
    return ReadBack(hits / max(1, len(chosen)), len(chosen), misses)
