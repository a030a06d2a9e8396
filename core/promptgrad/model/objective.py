"""The objective: cross-entropy of the target tokens given a template with prompt vectors spliced in.

This is the one forward pass that training, evaluation and the baselines share. The model computes
logits only for the last T columns (the target positions: every row ends in the same column), in the
frozen model's dtype, and starts after the template's cached constant prefix; the loss itself is taken
in fp32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from promptgrad.model.models import FrozenModel
from promptgrad.model.prefix_cache import model_inputs
from promptgrad.model.template import Batch


def embed_with_prompt(frozen: FrozenModel, batch: Batch, prompt: torch.Tensor) -> torch.Tensor:
    """Token embeddings of the batch with the prompt's vectors at its marked positions: `prompt` is
    [P, hidden] for every row, or [B, P, hidden] for one prompt per row (the discrete search's candidates).
    A gather by position, not masked_scatter: nothing here waits for the GPU to count the mask."""
    tokens = frozen.embedding(batch.input_ids)
    B, L, H = tokens.shape
    rows = prompt.to(tokens.dtype).expand(B, -1, -1)
    position = (batch.prompt_mask.cumsum(-1) - 1).clamp(min=0)  # the j-th prompt position of its row -> j
    spliced = torch.gather(rows, 1, position.unsqueeze(-1).expand(B, L, H))
    return torch.where(batch.prompt_mask.unsqueeze(-1), spliced, tokens)


def target_logits(frozen: FrozenModel, batch: Batch, prompt: torch.Tensor, n_logits: int | None = None) -> torch.Tensor:
    """Logits [B, n_logits, vocab] of the last columns; by default T, those predicting each target token
    (right-aligned, see Batch)."""
    inputs = model_inputs(frozen, batch, embed_with_prompt(frozen, batch, prompt))
    width = inputs["inputs_embeds"].shape[1]
    # positions as a tensor, not a count: transformers then gathers those hidden states into a contiguous
    # tensor, and the vocabulary projection is one plain matrix product; with a count it slices a view
    # and the projection (forward and backward) falls back to a much slower batched product on CPU
    keep = torch.arange(width - (n_logits or batch.target_ids.shape[1]), width, device=batch.input_ids.device)
    out = frozen.model(**inputs, logits_to_keep=keep, use_cache=False)
    return out.logits


def target_loss_sum(frozen: FrozenModel, batch: Batch, prompt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy over the target tokens, and how many tokens it sums (both tensors on the
    logits' device: turning either into a Python number would wait for the GPU)."""
    return summed_cross_entropy(target_logits(frozen, batch, prompt), batch)


def summed_cross_entropy(logits: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    logits = logits.float()
    # with a model split over devices (device_map) the logits live on the last one
    losses = F.cross_entropy(logits.flatten(0, 1), batch.target_ids.flatten().to(logits.device), reduction="none")
    mask = batch.target_mask.flatten().to(logits.device)
    return (losses * mask).sum(), mask.sum()


def cross_entropy_per_row(logits: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's summed cross-entropy over its target tokens [B], and how many tokens each sums [B]:
    evaluation keeps them per pair, for its bootstrap intervals."""
    logits = logits.float()
    B, T = batch.target_ids.shape
    losses = F.cross_entropy(logits.flatten(0, 1), batch.target_ids.flatten().to(logits.device), reduction="none")
    mask = batch.target_mask.to(logits.device)
    return (losses.view(B, T) * mask).sum(1), mask.sum(1)


def target_loss(frozen: FrozenModel, batch: Batch, prompt: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy per target token: the training loss and the reported test loss."""
    total, count = target_loss_sum(frozen, batch, prompt)
    return total / count
