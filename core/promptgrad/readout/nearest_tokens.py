"""The nearest-token readout: which vocabulary tokens each prompt vector is closest to, by cosine."""

from __future__ import annotations

import torch

from promptgrad.events import NearestToken


def nearest_tokens(prompt: torch.Tensor, embedding: torch.Tensor, tokenizer, k: int) -> list[list[NearestToken]]:
    """For each row of `prompt` [P, hidden], the k rows of `embedding` [vocab, hidden] most similar to it."""
    with torch.no_grad():
        table = torch.nn.functional.normalize(embedding.detach().float(), dim=-1)
        vectors = torch.nn.functional.normalize(prompt.detach().float().to(table.device), dim=-1)
        scores, ids = (vectors @ table.T).topk(k, dim=-1)
    return [
        [NearestToken(tokenizer.decode([i]), i, round(s, 4)) for s, i in zip(row_s.tolist(), row_i.tolist())]
        for row_s, row_i in zip(scores, ids)
    ]
