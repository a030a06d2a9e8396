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

Generating with the adapter: PEFT 0.21 looks for the key/value cache under `past_key_values`, which
transformers 5 renamed `cache`; finding none, it prepends the prompt again at every new token, so
`generate()` gets the first token right and then writes garbage (the position-ids warning PEFT prints is
harmless: without them the model numbers positions 0.. from the prompt on, as promptgrad does). Without
a cache (`use_cache=False`) PEFT gives the whole sequence each step and the answers are promptgrad's.
The model card (model_card.py) says so and shows the call; every export first runs that call on up to
CHECKED_INPUTS of the run's test inputs and refuses, writing nothing, if any answer differs.
"""

from __future__ import annotations

import os
import stat
import tempfile
import warnings
from pathlib import Path

import torch

from promptgrad.errors import UserError
from promptgrad.files import Folder, read_text
from promptgrad.integrations.model_card import CardFacts, input_text, model_card
from promptgrad.model.models import load_model, public_name
from promptgrad.model.precision import DTYPES
from promptgrad.model.template import PROMPT_PLACEHOLDER, Template, TemplateEncoder
from promptgrad.readout.evaluation import MAX_ANSWER_TOKENS, ends_line, greedy_answers
from promptgrad.store.run_facts import RunFacts
from promptgrad.store.run_folder import RunFolder

OUTSIDE = "use prompt.safetensors as docs/outside.md ('Using a learned prompt outside promptgrad') shows"
CHECKED_INPUTS = 8  # test inputs an export checks generate() on (uncached: each new token is a whole pass)


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
    """Write the run's prompt as a PEFT prompt-tuning adapter into `out_dir` (new or empty), with a model
    card, after checking that PEFT's generate() writes promptgrad's answers with it; returns `out_dir`."""
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

    check_destination(out_dir, None if to_make else base)  # before loading a model: a refusal should be quick
    folder = RunFolder.open(run_dir)
    prompt, metadata = folder.load_prompt()
    missing = [key for key in ("model", "model_source", "template") if not metadata.get(key)]
    if missing:
        raise UserError(
            f"{run_dir}/prompt.safetensors has no {', '.join(missing)} in its metadata, so the model and "
            f"template it belongs to are unknown; export a prompt written by promptgrad train"
        )
    template, prompt_len = metadata["template"], prompt.shape[0]
    # the run's precision as facts.json records what it became (the prompt's metadata does not hold it):
    # promptgrad predict computes in it, so the check below and the card's code do too
    precision = RunFacts.load(folder.path).precision
    frozen = load_model(metadata["model"], torch.device("cpu"), DTYPES[precision])
    encoder = TemplateEncoder(Template.parse(template), frozen.tokenizer, prompt_len)
    if encoder.bos:
        bos = frozen.tokenizer.convert_ids_to_tokens(encoder.bos[0])
        raise UserError(
            f"PEFT's prompt tuning puts the prompt before everything else, but this run's tokenizer starts "
            f"every text with {bos!r} and promptgrad puts the prompt after it: export only works for a "
            f"model whose tokenizer adds no BOS token; {OUTSIDE}"
        )
    if encoder.encode("x", "y").context[:prompt_len] != [PROMPT_PLACEHOLDER] * prompt_len:
        before = template[: template.index("{prompt}")].strip()
        raise UserError(
            f"PEFT's prompt tuning puts the prompt before everything else, but this run's template puts it "
            f"after {before!r}: export only works for a template that starts with {{prompt}}; {OUTSIDE}"
        )
    if prompt.shape[1] != frozen.hidden_size:
        raise UserError(
            f"{run_dir}/prompt.safetensors holds vectors of size {prompt.shape[1]}, but model "
            f"{metadata['model']!r} takes {frozen.hidden_size}: the prompt belongs to another model"
        )
    split = folder.split()
    inputs = list(dict.fromkeys(p.x for p in split.test))[:CHECKED_INPUTS] if split else []
    expected = (
        [a.text for a in greedy_answers(frozen, encoder, inputs, prompt.to(frozen.dtype), len(inputs))]
        if inputs
        else []
    )

    peft_model = get_peft_model(frozen.model, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=prompt_len))
    # get_peft_model names the base model after the folder transformers loaded it from: for the bundled
    # model a cache folder on this machine. The adapter names it as anyone can find it (models.public_name).
    public = public_name(metadata["model"])
    peft_model.peft_config["default"].base_model_name_or_path = public.name
    with torch.no_grad():
        peft_model.prompt_encoder["default"].embedding.weight.copy_(prompt)
    facts = CardFacts(
        folder.config(),
        read_text(folder.path / "config.toml"),
        folder.events(),
        public,
        prompt_len,
        frozen.hidden_size,
        str(DTYPES[precision]).removeprefix("torch."),
        str(out_dir),
        len(inputs),
        metadata.get("hard_prompt_text", ""),
    )

    tmp = None
    try:
        with base.subpath(to_make, create=True) as parent, tempfile.TemporaryDirectory() as private:
            # PEFT writes by path: into a private folder (0700, ours alone). No embedding layers to save (the
            # model's are frozen), and "auto" would ask the hub about the base model
            peft_model.save_pretrained(private, save_embedding_layers=False)
            check_generation(Path(private), metadata["model"], DTYPES[precision], template, inputs, expected)
            (Path(private) / "README.md").write_text(
                model_card(facts, inputs), encoding="utf-8"
            )  # not PEFT's blank one
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


def check_generation(
    adapter: Path, model: str, dtype: torch.dtype, template: str, inputs: list[str], expected: list[str]
) -> None:
    """Load the adapter as a user of plain PEFT would, generate as the model card says, and refuse the
    export if any answer differs from promptgrad's: an adapter that quietly answers otherwise would mislead."""
    import peft
    import transformers
    from peft import PeftModel

    if not inputs:
        return
    fresh = load_model(model, torch.device("cpu"), dtype)  # untouched by get_peft_model
    peft_model = PeftModel.from_pretrained(fresh.model, adapter).eval()
    for x, ours, theirs in zip(inputs, expected, peft_answers(peft_model, fresh.tokenizer, template, inputs)):
        if theirs != ours:
            raise UserError(
                f"with this adapter, PEFT {peft.__version__}'s generate() (transformers {transformers.__version__}) "
                f"answers {x!r} with {theirs!r}, but promptgrad with {ours!r}, so no adapter was written; {OUTSIDE}"
            )


@torch.inference_mode()
def peft_answers(peft_model, tokenizer, template: str, inputs: list[str]) -> list[str]:
    """What the model card's code answers: one input per generate() call, without a cache (model_card.py says why)."""
    text, ends, answers = input_text(template), ends_line(tokenizer), []
    for x in inputs:
        ids = tokenizer(text.replace("{x}", x), return_tensors="pt")
        with (
            warnings.catch_warnings()
        ):  # PEFT says it ignores position ids: it does, and numbers positions as promptgrad does
            warnings.simplefilter("ignore")
            out = peft_model.generate(
                **ids,
                max_new_tokens=MAX_ANSWER_TOKENS,
                do_sample=False,
                use_cache=False,
                pad_token_id=tokenizer.eos_token_id,
            )
        row = out[0, ids["input_ids"].shape[1] :].tolist()
        line = next((k for k, t in enumerate(row) if ends[t]), len(row))  # as evaluation.greedy_answers cuts an answer
        answers.append(tokenizer.decode(row[:line], skip_special_tokens=True).split("\n")[0].strip())
    return answers
