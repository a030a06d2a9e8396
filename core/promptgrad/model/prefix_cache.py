"""The template's constant prefix ("Here are two"), run through the model once and reused.

Every row of a batch starts with the same `prefix_len` tokens (template.py puts the padding after them),
and those tokens come before the prompt, so their keys and values never depend on it: the model
computes them once per prefix, and each forward pass feeds only the columns after the prefix, with that
cache in front. This saves the prefix's share of every training step, evaluation and search
candidate (a quarter of the sequence for the default template) and gives the same numbers.
"""

from __future__ import annotations

import copy

import torch

from promptgrad.model.template import Batch


def reuse_cache(out) -> dict:
    """The KV cache a forward pass returned, as the keyword that feeds it back in (transformers 5.2x
    renamed past_key_values to cache, in the output and the arguments alike)."""
    return {"cache": out["cache"]} if "cache" in out else {"past_key_values": out.past_key_values}


def model_inputs(frozen, batch: Batch, embeds: torch.Tensor) -> dict:
    """Keyword arguments for `frozen.model` on `embeds` [B, L, hidden] of `batch`: from the first column
    after the prefix, with the prefix's cached keys and values, where the batch has a prefix."""
    p = batch.prefix_len
    if not p:
        return {"inputs_embeds": embeds, "attention_mask": batch.attention_mask, "position_ids": batch.position_ids}
    return {
        "inputs_embeds": embeds[:, p:],
        "attention_mask": batch.attention_mask,  # the mask covers the cached columns too
        "position_ids": batch.position_ids[:, p:],
        **prefix_cache(frozen, batch.prefix_ids or tuple(batch.input_ids[0, :p].tolist()), embeds.shape[0]),
    }


def prefix_cache(frozen, prefix_ids: tuple[int, ...], batch_size: int) -> dict:
    """The keyword argument holding a fresh cache of the prefix's keys and values for `batch_size` rows
    (fresh because the forward pass appends to the cache it is given)."""
    key = tuple(prefix_ids)
    if key not in frozen._prefix_caches:
        # plain tensors even when called under inference_mode, so training can use them later
        with torch.inference_mode(False), torch.no_grad():
            out = frozen.model(input_ids=torch.tensor([key], device=frozen.device), use_cache=True)
        frozen._prefix_caches[key] = reuse_cache(out)
    ((keyword, cache),) = frozen._prefix_caches[key].items()
    cache = copy.deepcopy(cache)
    cache.batch_repeat_interleave(batch_size)
    return {keyword: cache}
