"""The soft prompt: `prompt_len` learnable vectors in the model's input-embedding space.

They are kept as an fp32 master copy, whatever precision the frozen model computes in, so that small
Adam updates are not rounded away; the forward pass casts them to the compute dtype. Initialisations
follow PEFT's prompt-tuning ones: random (the original experiment's), vocabulary rows, or a text; and
`run:<folder>` starts from the prompt another run learned (to train it on under other settings).
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
        """`init` is random | vocab | text:<words> | run:<folder>; `embedding` is the frozen [vocab, hidden] table."""
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
        if init.startswith("run:"):
            from promptgrad.run_folder import load_prompt

            vectors, _ = load_prompt(init[4:].strip())
            if tuple(vectors.shape) != (prompt_len, table.shape[1]):
                raise UserError(f"the prompt in {init[4:].strip()} has shape {tuple(vectors.shape)}, but this run needs "
                                f"({prompt_len}, {table.shape[1]}): the same model and prompt_len", "init")
            return SoftPrompt(vectors.to(table.device))
        raise UserError(f"init must be random, vocab, text:<words> or run:<folder>, got {init!r}", "init")
