"""Fluency: how natural a discrete prompt reads to the model itself, in nats per prompt token.

A prompt's fluency is the mean cross-entropy of its own tokens given the template text before them
(for "Here are two {prompt} {x} and {y}", the tokens of "Here are two", after BOS where the tokenizer
adds one; a `{x}` before `{prompt}` is left out, as the prompt must read well whatever the input).
Natural wordings score about 3-4 nats/token with SmolLM2-135M-Instruct; searched prompts without this term
about 10. EPO ("fluent dreaming") and FLRT add it to GCG's objective with a weight lambda:

    objective = task loss + lambda * nats/token

Its gradient with respect to the one-hot prompt has two parts: through the prompt tokens as *inputs*
(the embedding gradient times the embedding table, as for the task loss), and through them as
*targets*, which is exact and needs no backward pass: the log-probability the model gives each
vocabulary token at that position.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F

from promptgrad.model.models import FrozenModel
from promptgrad.model.template import TemplateEncoder


def context_ids(encoder: TemplateEncoder) -> list[int]:
    """BOS and the template's literal text before {prompt} ({x} left out), as token ids."""
    head = encoder.template.text[: encoder.template.text.index("{prompt}")]
    head = re.sub(r"\s*\{x\}", "", head).rstrip(" ")  # the space before {prompt} belongs to the prompt
    ids = list(encoder.bos) + (encoder.tokens(head) if head else [])
    if not ids:  # nothing before the prompt: condition on the end-of-text token, as a document start
        ids = [encoder.tokenizer.eos_token_id if encoder.tokenizer.eos_token_id is not None else 0]
    return ids


def prompt_logits(frozen: FrozenModel, context: list[int], prompt_embeds: torch.Tensor) -> torch.Tensor:
    """Logits [C, P, vocab] at the positions that predict each of the P prompt tokens, for C prompts
    given as embeddings [C, P, hidden] after the same context."""
    C, P, _ = prompt_embeds.shape
    ctx = frozen.embedding(torch.tensor(context, device=frozen.device)).to(prompt_embeds.dtype)
    embeds = torch.cat([ctx.expand(C, -1, -1), prompt_embeds], dim=1)
    n = len(context)
    keep = torch.arange(n - 1, n + P - 1, device=frozen.device)  # position t predicts token t + 1
    return frozen.model(inputs_embeds=embeds.to(frozen.dtype), logits_to_keep=keep, use_cache=False).logits


@torch.inference_mode()
def nats_per_token(frozen: FrozenModel, context: list[int], prompts: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """[C] mean cross-entropy per prompt token of each prompt [C, P] of token ids, on the CPU."""
    out = []
    table = frozen.embedding.weight
    for ids in prompts.to(frozen.device).split(chunk):
        logits = prompt_logits(frozen, context, table[ids]).float()
        out.append(F.cross_entropy(logits.transpose(1, 2), ids, reduction="none").mean(-1))
    return torch.cat(out).cpu()


def text_nats_per_token(frozen: FrozenModel, encoder: TemplateEncoder, text: str) -> float:
    """The same for a prompt given as text (a hand-written one, say), tokenised as it would be pasted."""
    ids = encoder.tokens(text)
    return float(nats_per_token(frozen, context_ids(encoder), torch.tensor([ids]))[0])


def one_hot_gradient(frozen: FrozenModel, context: list[int], ids: list[int]) -> torch.Tensor:
    """d (nats/token) / d one-hot [P, vocab] at the prompt `ids`: through the tokens as inputs (a backward
    pass to their embeddings, times the table) plus through them as targets (minus the log-probabilities
    at each position, divided by P: exact)."""
    table = frozen.embedding.weight
    target = torch.tensor(ids, device=frozen.device)
    vectors = table[target].detach().float().requires_grad_(True)
    logits = prompt_logits(frozen, context, vectors[None])[0].float()  # [P, vocab]
    F.cross_entropy(logits, target).backward()
    as_inputs = vectors.grad @ table.float().T
    as_targets = -torch.log_softmax(logits.detach(), dim=-1) / len(ids)
    return as_inputs + as_targets
