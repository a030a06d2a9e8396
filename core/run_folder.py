"""A run folder, `runs/<name>/`: everything needed to trace, resume, view or reuse a run.

    config.toml          the resolved TrainConfig
    metrics.jsonl        one JSON object per event, flushed as it goes (readable while being written)
    checkpoint.pt        prompt, optimiser state, RNG state and step, for --resume (written atomically)
    prompt.safetensors   tensor `prompt` [prompt_len, hidden] float32 with string metadata
                         `model`, `template`, `prompt_len` (and `hard_prompt_ids`/`hard_prompt_text`
                         for discrete prompts)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from safetensors import safe_open

from promptgrad.config import TrainConfig
from promptgrad.errors import UserError
from promptgrad.events import Event, event_from_json

CONFIG, METRICS, CHECKPOINT, PROMPT = "config.toml", "metrics.jsonl", "checkpoint.pt", "prompt.safetensors"


def atomic_write(path: Path, write) -> None:
    """Write through a temporary file and rename, so a crash never leaves a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


@dataclass
class RunFolder:
    path: Path

    @staticmethod
    def create(runs_dir: str | Path, name: str, config: TrainConfig) -> RunFolder:
        path = Path(runs_dir) / name
        if (path / CONFIG).exists():
            raise UserError(f"run folder {path} already exists; resume it with --resume {path} or pick another --name", "name")
        path.mkdir(parents=True, exist_ok=True)
        atomic_write(path / CONFIG, config.save)
        return RunFolder(path)

    @staticmethod
    def open(path: str | Path) -> RunFolder:
        path = Path(path)
        if not (path / CONFIG).is_file():
            raise UserError(f"{path} is not a run folder (it has no {CONFIG}); give a folder under runs/ made by promptgrad train")
        return RunFolder(path)

    def config(self) -> TrainConfig:
        return TrainConfig.load(self.path / CONFIG)

    def save_config(self, config: TrainConfig) -> None:
        atomic_write(self.path / CONFIG, config.save)

    # ---- metrics ----------------------------------------------------------------------------
    def append(self, event: Event) -> None:
        with open(self.path / METRICS, "a") as f:
            f.write(json.dumps(event.to_json()) + "\n")

    def events(self) -> list[Event]:
        """The events written so far; a last line still being written is skipped."""
        if not (self.path / METRICS).exists():
            return []
        out = []
        for line in (self.path / METRICS).read_text().splitlines():
            try:
                out.append(event_from_json(json.loads(line)))
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
        return out

    # ---- checkpoint -------------------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any]) -> Path:
        atomic_write(self.path / CHECKPOINT, lambda tmp: torch.save(state, tmp))
        return self.path / CHECKPOINT

    def load_checkpoint(self) -> dict[str, Any]:
        if not (self.path / CHECKPOINT).is_file():
            raise UserError(f"run folder {self.path} has no {CHECKPOINT} to resume from; start a new run instead")
        return torch.load(self.path / CHECKPOINT, weights_only=False)

    # ---- the learned prompt -----------------------------------------------------------------
    def save_prompt(self, prompt: torch.Tensor, metadata: dict[str, str]) -> Path:
        tensor = prompt.detach().float().cpu().contiguous()
        atomic_write(self.path / PROMPT, lambda tmp: save_file({"prompt": tensor}, str(tmp), metadata=metadata))
        return self.path / PROMPT

    def load_prompt(self) -> tuple[torch.Tensor, dict[str, str]]:
        return load_prompt(self.path / PROMPT)


def load_prompt(path: str | Path) -> tuple[torch.Tensor, dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist; the run has not saved a prompt yet (it writes one at each checkpoint)")
    with safe_open(str(path), "pt") as f:
        metadata = f.metadata() or {}
    return load_file(str(path))["prompt"], metadata
