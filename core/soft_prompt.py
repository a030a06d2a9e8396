"""The soft prompt: `prompt_len` learnable vectors in the model's input-embedding space.

They are kept as an fp32 master copy, whatever precision the frozen model computes in, so that small
Adam updates are not rounded away; the forward pass casts them to the compute dtype. Initialisations
follow PEFT's prompt-tuning ones: random (the original experiment's), vocabulary rows, or a text.
"""

from __future__ import annotations

import torch

from promptgrad.errors import UserError


class SoftPrompt(torch.nn.Module):
    def __init__(self, vectors: torch.Tensor):
        super().__init__()
        self.vectors = torch.nn.Parameter(vectors.detach().float().clone())

    @property
    def prompt_len(self) -> int:
        return self.vectors.shape[0]

    @staticmethod
    def initial(init: str, prompt_len: int, embedding: torch.Tensor, tokenizer, generator: torch.Generator) -> SoftPrompt:
        """`init` is random | vocab | text:<words>; `embedding` is the frozen [vocab, hidden] table."""
        table = embedding.detach().float()
        if init == "random":
            # "in-distribution" noise: each dimension gets the table's own mean and standard deviation
            mean, std = table.mean(0), table.std(0)
            noise = torch.randn(prompt_len, table.shape[1], generator=generator, device="cpu").to(table.device)
            return SoftPrompt(mean + std * noise)
        if init == "vocab":
            special = set(tokenizer.all_special_ids)
            rows = [i for i in torch.randperm(table.shape[0], generator=generator).tolist() if i not in special][:prompt_len]
            return SoftPrompt(table[rows])
        if init.startswith("text:"):
            ids = tokenizer(init[5:], add_special_tokens=False)["input_ids"]
            if not ids:
                raise UserError(f"init text {init[5:]!r} encodes to no tokens", "init")
            ids = (ids * prompt_len)[:prompt_len]  # repeat or truncate to the prompt length, as PEFT does
            return SoftPrompt(table[ids])
        raise UserError(f"init must be random, vocab or text:<words>, got {init!r}", "init")
