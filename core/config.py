"""The resolved configuration of one run: a typed dataclass, validated on creation, saved as TOML.

Every setting of a run lives here, so that `config.toml` in a run folder is enough to trace a result
back (nanoGPT saves the whole config in each checkpoint for the same reason).
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from promptgrad.errors import UserError

BUNDLED_MODEL = "smollm2-135m"
BUNDLED_DATA = "antonyms"
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
SCHEDULES = ("constant", "cosine")
MODES = ("soft", "hard")
METHODS = ("pez", "gcg", "relax")  # hard-prompt search methods, see hard_search.py
MAX_LR = 10.0
# what a run *is*: the same data split, batches, model, precision and search; resume refuses to change them
RUN_DEFINING = ("model", "data", "x_column", "y_column", "template", "prompt_len", "init", "baseline_text", "seed",
                "test_fraction", "train_size", "batch_size", "lr", "schedule", "warmup_steps", "precision", "mode", "method",
                "topk", "candidates", "rescore", "patience", "search_batch_size", "readable_only", "fluency")


@dataclass
class TrainConfig:
    # what to learn
    model: str = BUNDLED_MODEL
    data: str = BUNDLED_DATA
    x_column: str = "x"
    y_column: str = "y"
    template: str = "Here are two {prompt} {x} and {y}"
    prompt_len: int = 4
    init: str = "random"  # random | vocab | text:<words> | run:<run folder> (start from another run's prompt)
    baseline_text: str = " antonyms"
    # how to learn it
    lr: float = 3e-2
    schedule: str = "cosine"
    warmup_steps: int = 10
    batch_size: int = 32
    steps: int = 100  # optimiser steps; about 0.6 epoch of the antonyms, which fits 10 minutes on 2 CPU cores
    epochs: float = 0.0  # > 0: train this many passes over the training pairs instead of `steps`
    train_size: int = 0  # 0: all training pairs
    test_fraction: float = 0.2
    seed: int = 0
    # soft: learn free vectors; hard: search for real tokens that can be pasted into any API
    mode: str = "soft"
    method: str = "gcg"  # hard mode: pez (projected gradient), gcg (greedy coordinate gradient), relax (softmax baseline)
    topk: int = 256  # gcg: candidate tokens per position, those with the most negative one-hot gradient
    candidates: int = 512  # gcg: single-token swaps scored by their exact loss each step
    rescore: int = 0  # gcg: >0 screens the candidates on a quarter of the batch, re-scores this many best on all of it
    patience: int = 0  # gcg: after this many steps without a better held-out prompt, go on from the best one (0: never)
    search_batch_size: int = 8  # hard mode: training pairs per step (gcg scores every candidate on all of them)
    fluency: float = 0.0  # gcg: weight of the prompt's own cross-entropy (nats/token) in the objective; 0: task loss only
    readable_only: bool = True  # hard mode: only tokens that decode to printable ASCII
    # how often to look at it
    eval_every: int = 50  # steps; evaluations use eval_size pairs, the final one the whole test set
    eval_size: int = 256
    checkpoint_every: int = 100  # steps; 0: only at the end (and on a stop)
    checkpoint_minutes: float = 5.0  # also checkpoint when this long has passed since the last one; 0: never
    num_predictions: int = 8
    nearest_k: int = 5
    # where it runs
    device: str = "auto"
    precision: str = "auto"
    device_map: str = ""  # "auto": split a model too large for one GPU over all visible ones
    name: str = ""  # run folder name under runs_dir; empty: a timestamp
    runs_dir: str = "runs"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        from promptgrad.template import Template  # the template knows its own rules

        for name, value in self.to_dict().items():
            if isinstance(value, str) and "\x00" in value:
                raise UserError(f"{name} holds a NUL byte (\\x00), which no file name or text setting may hold; remove it", name)
        Template.parse(self.template)
        if self.prompt_len < 1:
            raise UserError(f"prompt_len must be at least 1, got {self.prompt_len}", "prompt_len")
        if not (self.init in ("random", "vocab") or self.init.startswith(("text:", "run:"))):
            raise UserError(f"init must be random, vocab, text:<words> or run:<run folder>, got {self.init!r}", "init")
        if self.init.startswith("text:") and not self.init[5:].strip():
            raise UserError("init text:<words> needs some words after 'text:', e.g. 'text: antonyms'", "init")
        if self.init.startswith("run:") and not self.init[4:].strip():
            raise UserError("init run:<folder> needs a run folder after 'run:', e.g. 'run:runs/first'", "init")
        if not (math.isfinite(self.lr) and 0 < self.lr <= MAX_LR):
            raise UserError(f"lr must be a number above 0 and at most {MAX_LR:g} (prompt vectors are of size ~1; "
                            f"the defaults use 0.03), got {self.lr}", "lr")
        if self.schedule not in SCHEDULES:
            raise UserError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}", "schedule")
        if self.batch_size < 1:
            raise UserError(f"batch_size must be at least 1, got {self.batch_size}", "batch_size")
        if self.steps < 0 or self.epochs < 0 or (self.steps == 0 and self.epochs == 0):
            raise UserError("set steps > 0 or epochs > 0 (neither may be negative)", "steps")
        if self.train_size < 0:
            raise UserError(f"train_size must be 0 (all) or a positive count, got {self.train_size}", "train_size")
        if not 0 < self.test_fraction < 1:
            raise UserError(f"test_fraction must lie between 0 and 1, got {self.test_fraction}", "test_fraction")
        if self.mode not in MODES:
            raise UserError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}", "mode")
        if self.method not in METHODS:
            raise UserError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}", "method")
        for name in ("topk", "candidates", "search_batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}", name)
        if self.patience < 0:
            raise UserError(f"patience must be 0 (never) or a positive count of steps, got {self.patience}", "patience")
        if not (math.isfinite(self.fluency) and self.fluency >= 0):
            raise UserError(f"fluency must be 0 (off) or a positive weight, got {self.fluency}", "fluency")
        if self.rescore < 0:
            raise UserError(f"rescore must be 0 (off) or a positive count, got {self.rescore}", "rescore")
        if not isinstance(self.readable_only, bool):
            raise UserError(f"readable_only must be true or false, got {self.readable_only!r}", "readable_only")
        for name in ("eval_every", "eval_size", "checkpoint_every", "num_predictions", "nearest_k", "warmup_steps"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} must not be negative, got {getattr(self, name)}", name)
        if not (math.isfinite(self.checkpoint_minutes) and self.checkpoint_minutes >= 0):
            raise UserError(f"checkpoint_minutes must be 0 (never) or a positive number of minutes, got {self.checkpoint_minutes}",
                            "checkpoint_minutes")
        if not (math.isfinite(self.epochs) and math.isfinite(self.test_fraction)):
            raise UserError("epochs and test_fraction must be finite numbers", "epochs")
        if self.device not in DEVICES:
            raise UserError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}", "device")
        if self.precision not in PRECISIONS:
            raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}", "precision")
        if "/" in self.name or self.name in (".", ".."):
            raise UserError(f"name must be a plain folder name, got {self.name!r}", "name")

    # ---- conversion -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise UserError(f"unknown setting {unknown[0]!r}; known settings: {', '.join(known)}", unknown[0])
        return cls(**{k: coerce(known[k], v) for k, v in values.items()})

    def replace(self, **changes: Any) -> TrainConfig:
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    def dumps(self) -> str:
        import tomli_w  # only writing needs it (a GPU box running the benchmarks from a copied tree may lack it)

        return tomli_w.dumps(self.to_dict())

    def save(self, path: Path) -> None:
        path.write_text(self.dumps())

    def with_absolute_paths(self) -> TrainConfig:
        """Local files named relative to the working directory, made absolute: the run folder then means
        the same data, model and parent run from wherever it is resumed or evaluated."""
        changes: dict[str, Any] = {}
        if self.data != BUNDLED_DATA and Path(self.data).expanduser().exists():
            changes["data"] = os.path.abspath(Path(self.data).expanduser())
        if self.model != BUNDLED_MODEL and Path(self.model).expanduser().is_dir():
            changes["model"] = os.path.abspath(Path(self.model).expanduser())
        if self.init.startswith("run:") and Path(self.init[4:].strip()).expanduser().is_dir():
            changes["init"] = "run:" + os.path.abspath(Path(self.init[4:].strip()).expanduser())
        return self.replace(**changes) if changes else self

    def total_steps(self, steps_per_epoch: int) -> int:
        return math.ceil(self.epochs * steps_per_epoch) if self.epochs else self.steps

    def check_resumable_as(self, saved: TrainConfig, where: str) -> None:
        """A resumed run keeps the settings that define it; say which one differs, if any."""
        for name in RUN_DEFINING:
            mine, theirs = getattr(self, name), getattr(saved, name)
            if name == "precision" and mine == "auto":
                continue  # auto means: whatever the run resolved it to
            if mine != theirs:
                raise UserError(f"{name} is {theirs!r} in {where}, not {mine!r}: a resumed run keeps the settings that "
                                f"define it; to change {name}, start a new run from this one's prompt (init run:{where})", name)

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        from promptgrad.files import read_text  # never through a link, never blocking on a FIFO

        try:
            values = tomllib.loads(read_text(path))
        except FileNotFoundError:
            raise UserError(f"config file {path} does not exist") from None
        except OSError as e:
            raise UserError(f"cannot read config file {path}: {e.strerror or e}") from None
        except tomllib.TOMLDecodeError as e:
            raise UserError(f"config file {path} is not valid TOML: {e}") from None
        return cls.from_dict(values)


def coerce(field: dataclasses.Field, value: Any) -> Any:
    """Turn a value from TOML, a form or the command line into the field's type, or say why not."""
    if isinstance(field.default, bool):
        truth = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
        if isinstance(value, bool):
            return value
        if isinstance(value, (str, int)) and str(value).strip().lower() in truth:
            return truth[str(value).strip().lower()]
        raise UserError(f"{field.name} must be true or false, got {value!r}", field.name)
    kind = {int: int, float: float, str: str}.get(type(field.default))
    if kind is None or isinstance(value, kind) and not isinstance(value, bool):
        return value
    try:
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        if kind is int:
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        return kind(value)
    except (TypeError, ValueError):
        raise UserError(f"{field.name} must be {kind.__name__}, got {value!r}", field.name) from None
