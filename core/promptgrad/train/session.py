"""What a run sets up before it learns anything: device, precision, data split, frozen model, encoder.

Training, `promptgrad eval`, `predict`, `nearest` and `explain` all build it here, so they build it the
same way: for a run folder, on the data and with the precision its facts.json recorded, never a new
decision. The library entry point (api.py) builds one around a model already loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from promptgrad.config import TrainConfig
from promptgrad.errors import UserError
from promptgrad.model.distributed import Processes, processes
from promptgrad.model.models import FrozenModel, hidden_size, load_model
from promptgrad.model.precision import (
    DTYPES,
    PrecisionChoice,
    check_recorded_precision,
    choose_precision,
    resolve_device,
)
from promptgrad.model.template import Template, TemplateEncoder
from promptgrad.problem.pairs import Pair, Split, load_pairs, split_pairs
from promptgrad.readout.baselines import demonstrations, k_shot_template
from promptgrad.store.run_facts import DataFacts, RunFacts
from promptgrad.store.run_folder import RunFolder


@dataclass
class Session:
    config: TrainConfig
    split: Split
    frozen: FrozenModel
    encoder: TemplateEncoder
    facts: RunFacts  # the precision decided (or recorded) and which pairs exactly were read
    processes: Processes = Processes()

    def baseline_prompt(self) -> tuple[torch.Tensor, TemplateEncoder]:
        """The first hand-written prompt's embeddings, and an encoder with room for exactly its tokens."""
        return self.text_prompt(self.config.problem.baseline_text[0], "baseline_text")

    def baseline_prompts(self) -> list[tuple[str, torch.Tensor, TemplateEncoder]]:
        """Every hand-written prompt: its text, its embeddings, an encoder with room for exactly its tokens."""
        return [(text, *self.text_prompt(text, "baseline_text")) for text in self.config.problem.baseline_text]

    def text_prompt(self, text: str, field: str | None = None) -> tuple[torch.Tensor, TemplateEncoder]:
        """Any wording as a prompt: its tokens' embeddings, in this run's template."""
        ids = self.frozen.tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise UserError(f"{field or 'text'} {text!r} encodes to no tokens", field)
        return self.token_prompt(ids)

    def token_prompt(self, ids: list[int], template: Template | None = None) -> tuple[torch.Tensor, TemplateEncoder]:
        """These tokens' embeddings as a prompt (a hard prompt's tokens exactly as found, not re-tokenised
        from its text), and an encoder with room for exactly them, in `template` or this run's."""
        with torch.no_grad():
            vectors = self.frozen.embedding(torch.tensor(ids, device=self.frozen.device)).float()
        return vectors, TemplateEncoder(template or self.encoder.template, self.frozen.tokenizer, len(ids))

    def k_shot_demonstrations(self) -> list[Pair]:
        """The training pairs the k-shot baseline shows (baselines.py); none when k_shot is 0, when there
        are no training pairs (eval --data reads none) or no hand-written prompt (a resolved config has one)."""
        problem = self.config.problem
        if not (problem.k_shot and self.split.train and problem.baseline_text):
            return []
        return demonstrations(self.split.train, problem.k_shot, self.config.learning.seed)

    def k_shot_prompt(self) -> tuple[str, torch.Tensor, TemplateEncoder] | None:
        """The k-shot baseline: its name ("3-shot"), the first hand-written prompt's embeddings, and an
        encoder whose template holds the demonstrations before the query; None without demonstrations."""
        shown = self.k_shot_demonstrations()
        if not shown:
            return None
        text = self.config.problem.baseline_text[0]
        ids = self.frozen.tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise UserError(f"baseline_text {text!r} encodes to no tokens", "baseline_text")
        return (f"{len(shown)}-shot", *self.token_prompt(ids, k_shot_template(self.encoder.template, shown, text)))

    @property
    def eval_batch_size(self) -> int:
        return max(64, self.config.learning.batch_size * 2)


def open_session(
    config: TrainConfig,
    recorded: RunFacts | None = None,
    run: str = "",
    evaluating: bool = False,
    precision: str | None = None,
    test_data: str | None = None,
) -> Session:
    """Data first (a bad file fails before minutes of model loading), then precision, then the model.
    For a new run the precision is decided here; for a run folder (`run`) the data must be what it
    `recorded`, and its recorded precision is used, and must be native here, unless `precision` (eval's
    --precision) asks for another. `test_data` (eval's --data): every pair of that file is a test pair,
    and the run's own data is not read."""
    config = config.resolved()
    if config.machine.threads:
        torch.set_num_threads(config.machine.threads)
    device = resolve_device(config.machine.device)
    group = processes(device.type)
    if group.active and config.learning.batch_size < group.world_size:
        raise UserError(
            f"batch_size {config.learning.batch_size} is smaller than the {group.world_size} processes sharing it",
            "batch_size",
        )
    device = resolve_device(config.machine.device, group.local_rank)
    pairs = load_pairs(test_data or config.problem.data, config.problem.x_column, config.problem.y_column)
    data = DataFacts.of(test_data or config.problem.data, pairs)
    if test_data:
        split = Split([], list(dict.fromkeys(pairs)))
    else:
        if recorded is not None:
            data.check_same_as(recorded.data, run)
        learning = config.learning
        split = split_pairs(pairs, learning.test_fraction, learning.seed, learning.train_size, learning.val_fraction)
    if recorded is not None and precision:
        choice = PrecisionChoice(precision, f"as asked, not the {recorded.precision} the run recorded")
    elif recorded is not None:
        check_recorded_precision(recorded.precision, device, run, evaluating)
        choice = PrecisionChoice(recorded.precision, recorded.precision_reason)
    else:
        asked = config.machine.precision
        choice = choose_precision(asked, device, hidden_size(config.problem.model) if asked == "auto" else 0)
        if group.any(choice.precision == "fp32", device) and choice.precision != "fp32":
            # every process must compute alike: fp32 if any of them would not choose bf16
            choice = PrecisionChoice("fp32", choice.reason + ", but another process chose fp32")
    frozen = load_model(config.problem.model, device, DTYPES[choice.precision], config.machine.device_map)
    session = session_around(config, frozen, split, RunFacts(choice.precision, choice.reason, str(device), data), group)
    check_context_length(session)
    return session


def context_length(model) -> int | None:
    """The most positions the model can attend to, from its config (None: no limit it states)."""
    config = model.config
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        if isinstance(getattr(config, key, None), int):
            return getattr(config, key)
    return None


def check_context_length(session: Session) -> None:
    """A pair too long for the model's context would fail deep inside its forward pass: name it instead."""
    limit = context_length(session.frozen.model)
    if limit is None:
        return
    encoder = session.encoder
    baseline = max(len(encoder.tokens(t)) for t in session.config.problem.baseline_text) - encoder.prompt_len
    pairs = (*session.split.train, *session.split.validation, *session.split.test)
    # the k-shot context adds the same tokens to every pair (its demonstrations are one literal text, and
    # the hand-written prompt stands in the prompt's place): measured once, on the first pair
    k_shot, extra = session.k_shot_prompt(), 0
    if k_shot is not None and pairs:
        extra = len(k_shot[2].encode(pairs[0].x, pairs[0].y).context) - len(
            encoder.encode(pairs[0].x, pairs[0].y).context
        )
    for pair in pairs:
        encoded = encoder.encode(pair.x, pair.y)
        plain = len(encoded.context) + len(encoded.target)
        if (length := plain + max(0, baseline)) > limit:
            raise UserError(
                f"the pair {pair.x!r} -> {pair.y!r} makes {length} tokens in the template, more than the "
                f"model's context of {limit}; shorten it or leave it out of the data",
                "data",
            )
        if (length := plain + extra) > limit:
            raise UserError(
                f"the k-shot baseline's context ({k_shot[0]}: its demonstrations, then the pair {pair.x!r} -> "
                f"{pair.y!r}) makes {length} tokens, more than the model's context of {limit}; lower k_shot "
                f"(0: no k-shot baseline)",
                "k_shot",
            )


def session_around(
    config: TrainConfig, frozen: FrozenModel, split: Split, facts: RunFacts, group: Processes = Processes()
) -> Session:
    encoder = TemplateEncoder(Template.parse(config.problem.template), frozen.tokenizer, config.problem.prompt_len)
    return Session(config, split, frozen, encoder, facts, group)


def open_run(path: Path, precision: str | None = None, test_data: str | None = None):
    """A run's session, built with the precision the run recorded (or `precision`, given on the command
    line), on the data it recorded, and its prompt, checked to fit the model."""
    run = RunFolder.open(path)
    prompt, metadata = run.load_prompt()
    config = run.config()
    session = open_session(
        config, RunFacts.load(run.path), str(run.path), evaluating=True, precision=precision, test_data=test_data
    )
    check_prompt_fits(run.path, prompt, config.problem.prompt_len, session.frozen.hidden_size)
    return session, prompt.to(session.frozen.device)


def check_prompt_fits(run: Path, prompt, prompt_len: int, hidden: int) -> None:
    if prompt.shape[0] != prompt_len:
        raise UserError(
            f"{run}/prompt.safetensors has {prompt.shape[0]} positions but the run's config says {prompt_len}"
        )
    if prompt.shape[1] != hidden:
        raise UserError(
            f"{run}/prompt.safetensors holds vectors of size {prompt.shape[1]}, but the run's model takes "
            f"{hidden}: the prompt belongs to another model"
        )


def pairs_the_run_saw(path: Path) -> tuple[list[Pair], list[Pair]] | None:
    """The run's training pairs and its validation pairs (which chose its prompt): from its split.jsonl, or
    for a folder from before that file, its own data split again (only if that data is unchanged); None
    where neither can be read, so a caller can say it cannot tell."""
    run = RunFolder.open(path)
    try:
        split = run.split()
        if split is None:
            config = run.config().resolved()
            pairs = load_pairs(config.problem.data, config.problem.x_column, config.problem.y_column)
            DataFacts.of(config.problem.data, pairs).check_same_as(RunFacts.load(run.path).data, str(run.path))
            learning = config.learning
            split = split_pairs(
                pairs, learning.test_fraction, learning.seed, learning.train_size, learning.val_fraction
            )
    except (UserError, OSError):
        return None
    return split.train, split.validation


def held_out_of(pairs: list[Pair], paths: list[Path], include_seen: bool) -> tuple[list[Pair], str]:
    """`pairs` (eval --data's) without those the runs at `paths` trained on or chose their prompt by, unless
    `include_seen`; and one line that says how many of them the runs saw, and what was done about it."""
    trained, validation = set(), set()
    for path in paths:
        seen = pairs_the_run_saw(path)
        if seen is None:
            return pairs, (
                f"cannot tell which of the {len(pairs)} pairs run {path} trained on (its split.jsonl and its "
                f"data cannot be read); all are scored"
            )
        trained |= set(seen[0])
        validation |= set(seen[1])
    validation -= trained
    who = f"run {paths[0]}" if len(paths) == 1 else f"the {len(paths)} runs"
    n_trained = sum(p in trained for p in pairs)
    n_validation = sum(p in validation for p in pairs)
    said = (
        f"{n_trained} of the file's {len(pairs)} pairs are training pairs of the run{'s' if len(paths) > 1 else ''}"
        + (f" and {n_validation} more chose its prompt (validation)" if n_validation else "")
    )
    if not n_trained + n_validation:
        return pairs, f"none of the file's {len(pairs)} pairs was seen by {who} in training: all are held out"
    if include_seen:
        return (
            pairs,
            said + "; all are scored, as --include-training-pairs asks (scores on seen pairs flatter the prompt)",
        )
    kept = [p for p in pairs if p not in trained and p not in validation]
    if not kept:
        raise UserError(
            f"every pair of the file was seen by {who} in training ({said}); nothing held out to score: "
            f"give other pairs, or --include-training-pairs to score them anyway"
        )
    return kept, said + f"; they are left out, {len(kept)} held-out pairs scored (--include-training-pairs scores all)"
