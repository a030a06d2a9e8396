"""Exporting a run's learned prompt as a PEFT prompt-tuning adapter, for `PeftModel.from_pretrained`.

PEFT's prompt tuning puts its virtual tokens before everything the model is given, BOS included. That
is promptgrad's context only when the template starts with {prompt} and the tokenizer adds no BOS
token; any other run is refused, with a pointer to the plain-transformers way (docs/outside.md), rather than exported as an adapter that would quietly mean something else.
Hard-prompt runs export the same way: their vectors are the chosen tokens' embeddings.

The adapter is built by PEFT itself (so its format is whatever the installed PEFT reads) in a private
temporary folder, copied into a fresh temporary folder beside the destination and renamed into place,
all through the destination's parent folder held as a descriptor (files.Folder) from before the model
is loaded: nothing is written through a link planted at the destination or at a level of its path that
promptgrad makes, and a crash leaves no half-written adapter.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import torch

from promptgrad.errors import UserError
from promptgrad.files import Folder

OUTSIDE = "use prompt.safetensors as docs/outside.md shows"


def check_destination(out_dir: Path, parent: Folder | None) -> None:
    """Refuse a link, a file, or a folder with something in it: an export never mixes with other files.
    `parent` is out_dir's parent folder (None: it does not exist yet, so neither does out_dir)."""
    if parent is None:
        return
    try:
        mode = parent.lstat(out_dir.name).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise UserError(f"{out_dir} is a symbolic link; promptgrad never writes through one: give a new folder")
    if not stat.S_ISDIR(mode):
        raise UserError(f"{out_dir} exists and is not a folder; give a new folder (or an empty one) for the adapter")
    with parent.sub(out_dir.name) as folder:
        if folder.listdir():
            raise UserError(f"{out_dir} exists and is not empty; give a new folder (or an empty one) for the adapter")


def copy_into(source: Path, folder: Folder) -> None:
    """The files PEFT wrote in its private folder, copied into `folder` (fresh: made by us) through its descriptor."""
    for entry in sorted(source.iterdir()):
        if entry.is_symlink():
            continue  # PEFT writes none; nothing it did not write is copied
        if entry.is_dir():
            with folder.sub(entry.name, create=True) as inner:
                copy_into(entry, inner)
        else:
            folder.write_atomic(entry.name, entry.read_bytes())


def export_peft(run_dir: Path, out_dir: Path) -> Path:
    """Write the run's prompt as a PEFT prompt-tuning adapter into `out_dir` (new or empty); returns it."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if out_dir.name in ("", ".", ".."):
        raise UserError(f"--out {out_dir} names no new folder; give one for the adapter, e.g. --out adapter")
    try:  # held from now: what is planted in its path while the model loads is not followed
        base, missing = Folder.deepest(out_dir.parent)
    except OSError as e:
        raise UserError(f"cannot write {out_dir}: {e.strerror or e}") from None
    with base:
        return write_adapter(run_dir, out_dir, base, missing)


def write_adapter(run_dir: Path, out_dir: Path, base: Folder, to_make: list[str]) -> Path:
    from peft import PromptTuningConfig, get_peft_model

    from promptgrad.models import load_model
    from promptgrad.run_folder import RunFolder
    from promptgrad.template import PROMPT_PLACEHOLDER, Template, TemplateEncoder

    check_destination(out_dir, None if to_make else base)  # before loading a model: a refusal should be quick
    prompt, metadata = RunFolder.open(run_dir).load_prompt()
    missing = [key for key in ("model", "model_source", "template") if not metadata.get(key)]
    if missing:
        raise UserError(f"{run_dir}/prompt.safetensors has no {', '.join(missing)} in its metadata, so the model and "
                        f"template it belongs to are unknown; export a prompt written by promptgrad train")
    template, prompt_len = metadata["template"], prompt.shape[0]
    frozen = load_model(metadata["model"], torch.device("cpu"), torch.float32)
    encoder = TemplateEncoder(Template.parse(template), frozen.tokenizer, prompt_len)
    if encoder.bos:
        bos = frozen.tokenizer.convert_ids_to_tokens(encoder.bos[0])
        raise UserError(f"PEFT's prompt tuning puts the prompt before everything else, but this run's tokenizer starts "
                        f"every text with {bos!r} and promptgrad puts the prompt after it: export only works for a "
                        f"model whose tokenizer adds no BOS token; {OUTSIDE}")
    if encoder.encode("x", "y").context[:prompt_len] != [PROMPT_PLACEHOLDER] * prompt_len:
        before = template[: template.index("{prompt}")].strip()
        raise UserError(f"PEFT's prompt tuning puts the prompt before everything else, but this run's template puts it "
                        f"after {before!r}: export only works for a template that starts with {{prompt}}; {OUTSIDE}")
    if prompt.shape[1] != frozen.hidden_size:
        raise UserError(f"{run_dir}/prompt.safetensors holds vectors of size {prompt.shape[1]}, but model "
                        f"{metadata['model']!r} takes {frozen.hidden_size}: the prompt belongs to another model")

    peft_model = get_peft_model(frozen.model, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=prompt_len))
    # get_peft_model names the base model after what transformers loaded it from; the run's recorded
    # model_source is that same place, but the adapter should name what the run recorded, not rely on it
    peft_model.peft_config["default"].base_model_name_or_path = metadata["model_source"]
    with torch.no_grad():
        peft_model.prompt_encoder["default"].embedding.weight.copy_(prompt)

    tmp = None
    try:
        with base.subpath(to_make, create=True) as parent, tempfile.TemporaryDirectory() as private:
            peft_model.save_pretrained(private)  # PEFT writes by path: into a private folder (0700, ours alone)
            try:
                tmp, folder = parent.fresh_folder(f".{out_dir.name}.tmp")  # fresh: nothing planted in it
                with folder:
                    copy_into(Path(private), folder)
                    os.fchmod(folder.fd, 0o755)
                check_destination(out_dir, parent)  # again: something may have appeared there while the model loaded
                parent.rename(tmp, out_dir.name)  # replaces an empty folder; fails on anything else, a link included
                tmp = None
            finally:
                if tmp is not None:
                    remove_tree(parent, tmp)
    except OSError as e:
        raise UserError(f"cannot write {out_dir}: {e.strerror or e}") from None
    return out_dir


def remove_tree(parent: Folder, name: str) -> None:
    """The temporary folder we made, removed through descriptors (never following a link in it)."""
    try:
        with parent.sub(name) as folder:
            for entry in folder.listdir():
                if stat.S_ISDIR(folder.lstat(entry).st_mode):
                    remove_tree(folder, entry)
                else:
                    folder.unlink(entry)
        parent.rmdir(name)
    except (OSError, UserError):
        pass
