"""From vectors to real tokens: the nearest-vocabulary projection, and the filters a discrete prompt passes.

A hard prompt is only worth having if it can be pasted into any API as text and mean the same tokens
there. Two filters make sure of that:

- the token filter (`allowed_tokens`): no special tokens, each token decodes to text that encodes back
  to itself, and with `readable_only` the text is printable ASCII (no control characters, no fragments
  of multi-byte characters);
- the round trip (`RoundTrip`): the whole context, with the prompt's ids in place, decoded to text and
  encoded again, gives the same ids. Tokens that merge across a boundary fail it (" h" + "ot" comes
  back as " hot"): the model would never see the searched tokens from the pasted text.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from promptgrad.model.template import PROMPT_PLACEHOLDER, TemplateEncoder

METRICS = ("cosine", "l2")

_allowed: dict[tuple, torch.Tensor] = {}


def token_texts(tokenizer, ids: list[int]) -> list[str]:
    """Each token's text exactly as it would be pasted (no clean-up of spaces before punctuation)."""
    return tokenizer.batch_decode([[i] for i in ids], clean_up_tokenization_spaces=False)


def decode(tokenizer, ids: list[int]) -> str:
    return tokenizer.decode(ids, clean_up_tokenization_spaces=False)


def is_readable(text: str) -> bool:
    return bool(text) and all(" " <= c <= "~" for c in text)


def allowed_tokens(tokenizer, vocab_size: int, readable_only: bool) -> torch.Tensor:
    """Bool [vocab_size]: may this token stand in a hard prompt? (Computed once per tokenizer: a few seconds.)"""
    key = (tokenizer.name_or_path, len(tokenizer), vocab_size, readable_only)
    if key not in _allowed:
        n = min(len(tokenizer), vocab_size)  # embedding rows past the tokenizer's vocabulary are padding
        texts = token_texts(tokenizer, list(range(n)))
        again = tokenizer(texts, add_special_tokens=False)["input_ids"]
        special = set(tokenizer.all_special_ids)
        allowed = torch.zeros(vocab_size, dtype=torch.bool)
        allowed[:n] = torch.tensor(
            [
                i not in special and again[i] == [i] and (is_readable(texts[i]) if readable_only else bool(texts[i]))
                for i in range(n)
            ]
        )
        _allowed[key] = allowed
    return _allowed[key]


class Projection:
    """Nearest allowed vocabulary row for each vector, by cosine similarity (PEZ's choice) or L2 distance."""

    def __init__(self, table: torch.Tensor, allowed: torch.Tensor, metric: str = "cosine"):
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        self.table = table.detach()
        self.metric = metric
        keys = self.table.float()
        self.keys = F.normalize(keys, dim=-1) if metric == "cosine" else keys
        # -|t|^2 / 2 ranks rows by L2 distance once added to v.t (|v|^2 is the same for every row)
        offset = torch.zeros(len(keys), device=keys.device) if metric == "cosine" else -0.5 * keys.pow(2).sum(-1)
        self.offset = offset.masked_fill(~allowed.to(keys.device), -torch.inf)

    @torch.no_grad()
    def ids(self, vectors: torch.Tensor) -> torch.Tensor:
        """The [P] ids of the rows nearest to `vectors` [P, hidden]."""
        v = vectors.detach().float().to(self.keys.device)
        if self.metric == "cosine":
            v = F.normalize(v, dim=-1)
        return (v @ self.keys.T + self.offset).argmax(-1)

    def rows(self, ids: torch.Tensor | list[int]) -> torch.Tensor:
        """The exact vocabulary rows [P, hidden] of `ids`, in fp32."""
        return self.table[torch.as_tensor(ids, device=self.table.device)].float()


class RoundTrip:
    """Does a prompt survive decode -> encode inside the template? Checked in the contexts of a few
    inputs, since merges happen at the prompt's boundaries with the text around it."""

    def __init__(self, encoder: TemplateEncoder, xs: list[str]):
        self.tokenizer = encoder.tokenizer
        self.skip = len(encoder.bos)  # the BOS token is added by the tokenizer, never written as text
        self.contexts = [torch.tensor(encoder.encode(x, "_").context[self.skip :]) for x in dict.fromkeys(xs)]

    def __call__(self, prompts: torch.Tensor | list[list[int]]) -> torch.Tensor:
        """Bool [N] for N prompts given as ids [N, P]."""
        prompts = torch.as_tensor(prompts).cpu()
        filled = []
        for context in self.contexts:
            ids = context.repeat(len(prompts), 1)
            ids[ids == PROMPT_PLACEHOLDER] = prompts.flatten()
            filled.append(ids)
        filled = torch.cat(filled)  # [contexts * N, L]: context-major
        texts = self.tokenizer.batch_decode(filled.tolist(), clean_up_tokenization_spaces=False)
        again = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        same = torch.tensor([a == f for a, f in zip(again, filled.tolist())])
        return same.view(len(self.contexts), len(prompts)).all(0)
