"""What a run sets up before it learns anything: device, precision, data split, frozen model, encoder.

Training, `promptgrad eval`, `predict` and `nearest` all build it here, so they build it the same way:
in particular with the precision the run recorded, never a new decision.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from promptgrad.config import TrainConfig
from promptgrad.distributed import Processes, processes
from promptgrad.errors import UserError
from promptgrad.models import FrozenModel, hidden_size, load_model
from promptgrad.pairs import Split, load_pairs, split_pairs
from promptgrad.precision import DTYPES, PrecisionChoice, check_recorded_precision, choose_precision, resolve_device
from promptgrad.run_facts import DataFacts
from promptgrad.template import Template, TemplateEncoder


@dataclass
class Session:
    config: TrainConfig
    split: Split
    frozen: FrozenModel
    encoder: TemplateEncoder
    precision: PrecisionChoice
    data: DataFacts  # which pairs exactly were read (run_facts.py)
    processes: Processes = Processes()

    def baseline_prompt(self) -> tuple[torch.Tensor, TemplateEncoder]:
        """The hand-written prompt's embeddings, and an encoder with room for exactly its tokens."""
        return self.text_prompt(self.config.baseline_text, "baseline_text")

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

    @property
    def eval_batch_size(self) -> int:
        return max(64, self.config.batch_size * 2)


def open_session(config: TrainConfig, recorded: DataFacts | None = None, run: str = "", evaluating: bool = False) -> Session:
    """Data first (a bad file fails before minutes of model loading), then precision, then the model.
    `config.precision` auto is decided here; a run folder's config holds the decided value. For a run
    folder (`run`), the data must be what it `recorded`, and a recorded bf16 must be native here."""
    device = resolve_device(config.device)
    group = processes(device.type)
    if group.active and config.batch_size < group.world_size:
        raise UserError(f"batch_size {config.batch_size} is smaller than the {group.world_size} processes sharing it", "batch_size")
    device = resolve_device(config.device, group.local_rank)
    pairs = load_pairs(config.data, config.x_column, config.y_column)
    data = DataFacts.of(config.data, pairs)
    if recorded is not None:
        data.check_same_as(recorded, run)
    split = split_pairs(pairs, config.test_fraction, config.seed, config.train_size)
    if run:
        check_recorded_precision(config.precision, device, run, evaluating)
    choice = choose_precision(config.precision, device, hidden_size(config.model) if config.precision == "auto" else 0)
    if group.any(choice.precision == "fp32", device) and choice.precision != "fp32":
        # every process must compute alike: fp32 if any of them would not choose bf16
        choice = PrecisionChoice("fp32", choice.reason + ", but another process chose fp32")
    frozen = load_model(config.model, device, DTYPES[choice.precision], config.device_map)
    encoder = TemplateEncoder(Template.parse(config.template), frozen.tokenizer, config.prompt_len)
    return Session(config, split, frozen, encoder, choice, data, group)
