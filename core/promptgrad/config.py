"""The settings of a run, each declared once: its type, default, choices, help and whether it defines the run.

A setting is a field of one of the groups below, declared with `setting(...)` (PEFT's and
transformers' `field(metadata={"help": ...})` pattern). Everything else is generated from these
declarations: the command line's flags and `--help` (cli.py), the TUI's form with its sections, hints
and choice widgets (tui/promptgrad_tui/widgets/config_form.py), TOML load and save with validation, the check that a
resumed run keeps what defines it, and the settings table of docs/settings.md (`python -m promptgrad.config`).

    TrainConfig
      problem   what to learn: the task, the model, the data, the template, the prompt
      learning  how to learn it: soft or hard, the optimiser, its schedule and length, the split
      search    the discrete search (mode hard): the method and what it searches over
      gcg       the settings of GCG alone
      watch     how often to look: evaluations, readouts, checkpoints
      scoring   how answers are judged: the accuracy rule's normalisations (answer_rule.py)
      machine   where it runs and where it writes

Flag and TOML names are the field names, unique across groups, so a flat `{"steps": 50}` (a form, a
command line, a hand-written TOML file) reaches its group; config.toml is written with one table per group.

The checks that belong to another room (a template's slots, an init's syntax, a task's name, a regex of
the accuracy rule) are imported inside the functions that use them: those rooms bring torch (2.7 s),
and the settings are read by `--help` and the TUI's form first (0.2 s).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import tomllib
import typing
import unicodedata
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from promptgrad.bundled import BUNDLED_DATA, BUNDLED_MODEL, OLD_BUNDLED_MODEL_NAMES  # noqa: F401 (named here too)
from promptgrad.errors import UserError

MODEL_SUGGESTIONS = (BUNDLED_MODEL, "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")
MAX_LR = 10.0


def setting(
    default: Any,
    help: str,
    *,
    choices: tuple[str, ...] = (),
    defines_run: bool = False,
    hint: str = "",
    suggestions: tuple[str, ...] = (),
    at_least: float | None = None,
    check: Callable[[Any], str | None] | None = None,
) -> Any:
    """Declare a setting. `help` is the whole explanation (--help, docs/settings.md); `hint` a few words under
    the form's field; `choices` a closed set; `at_least` a lower bound; `check(value)` returns what is
    wrong with a value, or None; `defines_run`: a resumed run must keep it. A list default makes a
    setting that holds several texts (a repeatable flag, a TOML list)."""
    metadata = {
        "help": help,
        "choices": choices,
        "defines_run": defines_run,
        "hint": hint,
        "suggestions": suggestions,
        "at_least": at_least,
        "check": check,
    }
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def default_of(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def check_template(value: str) -> str | None:
    from promptgrad.model.template import Template  # the template knows its own rules

    if not value:
        return None  # the task's
    try:
        Template.parse(value)
    except UserError as e:
        return str(e)
    return None


def check_init(value: str) -> str | None:
    from promptgrad.model.soft_prompt import parse_init  # the initialisation knows its own syntax

    try:
        parse_init(value)
    except UserError as e:
        return str(e)
    return None


def check_lr(value: float) -> str | None:
    if math.isfinite(value) and 0 < value <= MAX_LR:
        return None
    return f"lr must be a number above 0 and at most {MAX_LR:g} (prompt vectors are of size ~1; the defaults use 0.03), got {value}"


def check_task(value: str) -> str | None:
    from promptgrad.problem.tasks import is_task_file, task_named

    if not value or is_task_file(value):
        return None  # a task file is read and checked where the config is resolved: a run folder names one it no longer needs
    try:
        task_named(value)
    except UserError as e:
        return str(e)
    return None


def check_baselines(value: list[str]) -> str | None:
    empty = [i for i, text in enumerate(value) if not text.strip()]
    return f"baseline_text {empty[0] + 1} is empty; give the words of a hand-written prompt" if empty else None


def task_names() -> tuple[str, ...]:
    from promptgrad.problem.tasks import bundled_tasks

    return tuple(bundled_tasks())


def control_characters(text: str, allowed: str = "") -> list[str]:
    """The control characters in `text` (a newline, a tab, an escape, NUL; line and paragraph separators),
    but `allowed`: in a name they end a TOML comment, a log line or a terminal's colours."""
    return [c for c in text if c not in allowed and unicodedata.category(c) in ("Cc", "Zl", "Zp")]


def check_name(value: str) -> str | None:
    if "/" in value or value in (".", ".."):
        return f"name must be a plain folder name, got {value!r}"
    if control := control_characters(value):
        return f"name must hold no control characters (a newline, a tab, an escape), got {value!r} with {control[0]!r} in it"
    return None


TRACKERS = ("tensorboard", "mlflow", "trackio", "wandb")  # trackers.py has one class for each


def check_report_to(value: list[str]) -> str | None:
    unknown = [name for name in value if name not in TRACKERS]
    return (
        (
            f"report_to {unknown[0]!r} is not a tracker; each is one of {', '.join(TRACKERS)} (repeat the flag for "
            f"several)"
        )
        if unknown
        else None
    )


@dataclass
class ProblemSettings:
    """What to learn"""

    task: str = setting(
        "",
        "a bundled task (promptgrad tasks lists them) or a task file of your own (a path ending .toml, "
        "docs/tasks.md): its data, columns, template and hand-written prompts stand in for those settings "
        "left empty; empty: the bundled antonyms when data is empty too (or the bundled task data names), "
        "else none, and then template and baseline_text must be given",
        defines_run=True,
        hint="a bundled task or a .toml task file (f3 lists them)",
        suggestions=task_names(),
        check=check_task,
    )
    model: str = setting(
        BUNDLED_MODEL,
        "the frozen causal LM: the bundled smollm2-135m-instruct-q4_1 (SmolLM2-135M-Instruct, its Q4_1 GGUF "
        "de-quantised to float32), a Hugging Face id (gpt2, gpt2-large) "
        "or a local model folder",
        defines_run=True,
        hint="gpt2…gpt2-xl, id or path",
        suggestions=MODEL_SUGGESTIONS,
    )
    data: str = setting(
        "",
        "the example pairs: a bundled task's name, a .jsonl/.json/.csv/.parquet file, a folder saved by "
        "datasets' save_to_disk, or a Hugging Face dataset name; empty: the task's",
        defines_run=True,
        hint="empty: the task's; a file, folder or dataset",
    )
    x_column: str = setting("x", "the data's column holding the input x", defines_run=True)
    y_column: str = setting("y", "the data's column holding the target y", defines_run=True)
    template: str = setting(
        "",
        "the text the model reads: {prompt} (anywhere before {y}), {x} and {y}; the loss is on the "
        "tokens of {y} only; a space before a slot belongs to the slot; empty: the task's",
        defines_run=True,
        hint="empty: the task's",
        check=check_template,
    )
    prompt_len: int = setting(
        4, "how many prompt vectors (or tokens) stand where {prompt} is", defines_run=True, at_least=1
    )
    init: str = setting(
        "random",
        "where the prompt starts: random (the embedding table's mean and spread), vocab (random "
        "vocabulary rows), text:<words> (those words' embeddings, as many tokens as prompt_len), or "
        "run:<folder> (another run's prompt)",
        defines_run=True,
        hint="random, vocab, text:…, run:<folder>",
        suggestions=("random", "vocab", "text:"),
        check=check_init,
    )
    baseline_text: list = setting(
        [],
        "the hand-written prompts the learned one is compared with (a leading space belongs "
        "to the prompt; repeat the flag for several); empty: the task's",
        defines_run=True,
        hint="empty: the task's; a JSON list",
        check=check_baselines,
    )
    k_shot: int = setting(
        3,
        "a k-shot baseline beside the learned prompt: this many training pairs (drawn with the seed), "
        "written in the template with the first hand-written prompt, one per line before each test "
        "pair; 0: no k-shot baseline",
        defines_run=True,
        hint="0: no k-shot baseline",
        at_least=0,
    )


@dataclass
class LearningSettings:
    """How to learn it"""

    mode: str = setting(
        "soft",
        "soft: learn free vectors; hard: search for real tokens that can be pasted into any API",
        choices=("soft", "hard"),
        defines_run=True,
    )
    lr: float = setting(
        3e-2,
        "Adam's learning rate for the prompt vectors (soft, and PEZ's and relax's shadow)",
        defines_run=True,
        check=check_lr,
    )
    schedule: str = setting(
        "cosine",
        "the learning rate over the run: constant, or cosine decay to 0 at the last step",
        choices=("constant", "cosine"),
        defines_run=True,
    )
    warmup_steps: int = setting(10, "steps of linear warm-up to the full learning rate", defines_run=True, at_least=0)
    batch_size: int = setting(32, "training pairs per step (soft mode)", defines_run=True, at_least=1)
    steps: int = setting(
        100,
        "optimiser steps (about 0.6 epoch of the antonyms; the default job takes about 4 minutes on 2 CPU cores)",
        at_least=0,
    )
    epochs: float = setting(
        0.0,
        "> 0: train this many passes over the training pairs instead of `steps`",
        hint="> 0: replaces steps",
        at_least=0,
    )
    train_size: int = setting(
        0,
        "train on this many training pairs only (0: all); the test pairs stay the same",
        defines_run=True,
        hint="0: all training pairs",
        at_least=0,
    )
    test_fraction: float = setting(
        0.2, "the share of pairs held out for testing (a pair and its reverse stay on one side)", defines_run=True
    )
    seed: int = setting(0, "seeds the split, the initial prompt and the batches", defines_run=True)
    val_fraction: float = setting(
        0.0,
        "> 0: hold out this share of the training pairs as a validation split, scored every "
        "eval_every steps; the prompt with the best validation loss is kept as the result",
        defines_run=True,
        hint="0: none; e.g. 0.2",
    )
    stop_patience: int = setting(
        0,
        "stop after this many validation scores without a better one (0: never stop early; "
        "the best prompt is still kept)",
        hint="0: never stop early",
        at_least=0,
    )

    def validate(self) -> None:
        if self.steps == 0 and self.epochs == 0:
            raise UserError("set steps > 0 or epochs > 0", "steps")
        if not (math.isfinite(self.test_fraction) and 0 < self.test_fraction < 1):
            raise UserError(f"test_fraction must lie between 0 and 1, got {self.test_fraction}", "test_fraction")
        if not 0 <= self.val_fraction < 1:
            raise UserError(
                f"val_fraction must be at least 0 and below 1 (0: no validation split; 0.2: a fifth of the "
                f"training pairs), got {self.val_fraction}",
                "val_fraction",
            )
        if self.val_fraction and self.mode == "hard":
            raise UserError(
                "val_fraction is for soft prompts; hard mode already keeps the best prompt on a held-out "
                "slice of the training pairs: leave val_fraction at 0",
                "val_fraction",
            )
        if self.stop_patience and not self.val_fraction:
            raise UserError(
                f"stop_patience {self.stop_patience} needs a validation split to watch: give val_fraction > 0 "
                f"(e.g. 0.2), or stop_patience 0",
                "stop_patience",
            )


@dataclass
class SearchSettings:
    """The discrete search (mode hard)"""

    method: str = setting(
        "gcg",
        "pez (projected gradient), gcg (greedy coordinate gradient) or relax (the original's "
        "softmax relaxation, a baseline)",
        choices=("pez", "gcg", "relax"),
        defines_run=True,
    )
    search_batch_size: int = setting(
        8, "training pairs per search step (gcg scores every candidate on all of them)", defines_run=True, at_least=1
    )
    readable_only: bool = setting(True, "only tokens that decode to printable ASCII", defines_run=True)


@dataclass
class GCGSettings:
    """GCG (method gcg)"""

    topk: int = setting(
        256,
        "candidate tokens per position: those with the most negative one-hot gradient",
        defines_run=True,
        at_least=1,
    )
    candidates: int = setting(
        512, "single-token swaps scored by their exact loss each step", defines_run=True, at_least=1
    )
    rescore: int = setting(
        0,
        "> 0: screen the candidates on a quarter of the batch, then re-score this many best on all of it",
        defines_run=True,
        at_least=0,
    )
    patience: int = setting(
        0,
        "after this many steps without a better held-out prompt, go on from the best one (0: never)",
        defines_run=True,
        at_least=0,
    )
    fluency: float = setting(
        0.0,
        "weight of the prompt's own cross-entropy (nats/token) in the objective; 0: task loss only",
        defines_run=True,
        at_least=0,
    )


@dataclass
class WatchSettings:
    """How often to look"""

    eval_every: int = setting(
        50,
        "steps between evaluations on eval_size test pairs (the last one uses the whole test set); 0: only at the end",
        at_least=0,
    )
    eval_size: int = setting(256, "test pairs scored at each evaluation during the run (0: all)", at_least=0)
    checkpoint_every: int = setting(100, "steps between checkpoints (0: only at the end and on a stop)", at_least=0)
    checkpoint_minutes: float = setting(
        5.0,
        "also checkpoint when this many minutes have passed since the last one (0: never)",
        hint="0: by steps only",
        at_least=0,
    )
    num_predictions: int = setting(8, "test pairs whose greedy predictions are shown at each evaluation", at_least=0)
    nearest_k: int = setting(5, "vocabulary tokens shown nearest to each prompt vector", at_least=0)
    report_to: list = setting(
        [],
        "also log the run to these experiment trackers, each an optional extra (pip install "
        "'promptgrad[tensorboard]'): tensorboard, mlflow, trackio, wandb (repeat the flag for "
        "several); the run folder stays the record; empty: none",
        hint="tensorboard, mlflow, trackio, wandb",
        check=check_report_to,
    )
    tracker_dir: str = setting(
        "tracking",
        "the folder for the trackers' local files (TensorBoard's event files, MLflow's "
        "store unless MLFLOW_TRACKING_URI is set, wandb's), beside the run folders, not in them",
    )


def check_ignore_regex(value: str) -> str | None:
    from promptgrad.readout.answer_rule import check_regex  # the rule knows its own syntax

    return check_regex(value) if value else None


@dataclass
class ScoringSettings:
    """How answers are judged"""

    ignore_case: bool = setting(
        False,
        "accuracy ignores letter case (answer and target compared case folded); off: case as written",
        defines_run=True,
    )
    ignore_punctuation: bool = setting(
        False, "accuracy ignores punctuation (removed from answer and target, so U.S. matches US)", defines_run=True
    )
    strip_whitespace: bool = setting(
        False,
        "accuracy ignores whitespace before the answer (the template's space before {y} included)",
        defines_run=True,
    )
    ignore_regex: str = setting(
        "",
        "accuracy ignores the text this regular expression matches, in answer and target "
        "(e.g. '\\b(the|a) ' drops articles); empty: none",
        defines_run=True,
        hint="empty: none",
        check=check_ignore_regex,
    )


@dataclass
class MachineSettings:
    """Where it runs"""

    device: str = setting("auto", "auto (a CUDA GPU if there is one), cpu or cuda", choices=("auto", "cpu", "cuda"))
    precision: str = setting(
        "auto",
        "auto (decided from what the device is, then recorded), fp32 or bf16",
        choices=("auto", "fp32", "bf16"),
        defines_run=True,
    )
    device_map: str = setting(
        "",
        "auto: split a model too large for one GPU over all visible ones",
        hint="auto: split over all GPUs",
        suggestions=("auto",),
    )
    threads: int = setting(
        0,
        "CPU threads for PyTorch (0: its default, one per core); fewer can be faster on a machine others share",
        hint="0: PyTorch's default",
        at_least=0,
    )
    name: str = setting(
        "", "the run folder's name under runs_dir (empty: a timestamp)", hint="empty: a timestamp", check=check_name
    )
    runs_dir: str = setting("runs", "the folder that holds the run folders")


@dataclass(init=False)
class TrainConfig:
    """Every setting of a run, grouped by concern; config.toml in a run folder holds it whole, so a result can
    be traced back to it (nanoGPT saves its whole config in each checkpoint for the same reason).

        TrainConfig(steps=50, model="gpt2")        settings by name, the rest their defaults
        TrainConfig(gcg=GCGSettings(topk=64))      or whole groups
    """

    problem: ProblemSettings
    learning: LearningSettings
    search: SearchSettings
    gcg: GCGSettings
    watch: WatchSettings
    scoring: ScoringSettings
    machine: MachineSettings

    def __init__(self, **values: Any) -> None:
        """`values`: whole groups by their names, and single settings by theirs (over those groups)."""
        declared, kinds = self.settings(), self.group_types()
        for name in values:
            if name not in declared and name not in kinds:
                raise UserError(f"unknown setting {name!r}; known settings: {', '.join(declared)}", name)
        for group, kind in kinds.items():
            changes = {
                name: coerce(f, values[name]) for name, (g, f) in declared.items() if g == group and name in values
            }
            base = values.get(group) or kind()
            setattr(self, group, dataclasses.replace(base, **changes) if changes else base)
        for group in self.groups():
            validate_group(group)

    # ---- the declarations, walked -------------------------------------------------------------
    @classmethod
    def group_types(cls) -> dict[str, type]:
        return {f.name: typing.get_type_hints(cls)[f.name] for f in fields(cls)}

    @classmethod
    def settings(cls) -> dict[str, tuple[str, dataclasses.Field]]:
        """Every setting by its (flat, unique) name: (its group, its field)."""
        return declared_settings(cls)

    def groups(self) -> list[Any]:
        return [getattr(self, f.name) for f in fields(self)]

    def get(self, name: str) -> Any:
        group, _ = self.settings()[name]
        return getattr(getattr(self, group), name)

    # ---- conversion -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def flat(self) -> dict[str, Any]:
        return {name: self.get(name) for name in self.settings()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """From flat settings ({"steps": 50}), one table per group ({"learning": {"steps": 50}}), or both;
        values as TOML, a form or a command line give them (strings are converted and checked)."""
        settings = cls.settings()
        flat: dict[str, Any] = {}
        for key, value in values.items():
            if key in cls.group_types() and isinstance(value, dict):
                for name, inner in value.items():
                    if settings.get(name, (None,))[0] != key:
                        raise UserError(
                            f"unknown setting {key}.{name}; the settings of [{key}]: "
                            f"{', '.join(f.name for f in fields(cls.group_types()[key]))}",
                            name,
                        )
                    flat[name] = inner
            else:
                flat[key] = value
        if flat.get("model") in OLD_BUNDLED_MODEL_NAMES:  # an older run folder's config: the same bundled model
            flat["model"] = BUNDLED_MODEL
        return cls(**flat)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some settings changed, by their flat names."""
        return type(self).from_dict({**self.flat(), **changes})

    def dumps(self) -> str:
        import tomli_w  # only writing needs it (a GPU box running the benchmarks from a copied tree may lack it)

        return tomli_w.dumps(self.to_dict())

    def save(self, path: Path) -> None:
        path.write_text(self.dumps())

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
        from promptgrad.numbers import DamagedNumber, read_plain  # the one parser of numbers read back

        try:
            values = read_plain(values, "")
        except DamagedNumber as e:
            raise UserError(f"config file {path} is damaged: {e}") from None
        return cls.from_dict(values)

    # ---- what a run is --------------------------------------------------------------------------
    def total_steps(self, steps_per_epoch: int) -> int:
        learning = self.learning
        return math.ceil(learning.epochs * steps_per_epoch) if learning.epochs else learning.steps

    def check_resumable_as(self, saved: TrainConfig, where: str) -> None:
        """A resumed run keeps the settings that define it; say which one differs, if any."""
        for name, (_, f) in self.settings().items():
            mine, theirs = self.get(name), saved.get(name)
            if f.metadata["defines_run"] and mine != theirs:
                raise UserError(
                    f"{name} is {theirs!r} in {where}, not {mine!r}: a resumed run keeps the settings that "
                    f"define it; to change {name}, start a new run from this one's prompt (init run:{where})",
                    name,
                )

    def resolved(self) -> TrainConfig:
        """The settings a run is made of, as recorded in its folder: what was left empty filled from the
        task, and local files named relative to the working directory made absolute, so the folder means
        the same data, model and parent run from wherever it is resumed or evaluated."""
        from promptgrad.model.soft_prompt import parse_init

        problem, changes = self.problem, self.task_settings()
        data = changes.get("data", problem.data)
        if not is_bundled(data) and Path(data).expanduser().exists():
            changes["data"] = os.path.abspath(Path(data).expanduser())
        if problem.model != BUNDLED_MODEL and Path(problem.model).expanduser().is_dir():
            changes["model"] = os.path.abspath(Path(problem.model).expanduser())
        kind, argument = parse_init(problem.init)
        if kind == "run" and Path(argument).expanduser().is_dir():
            changes["init"] = "run:" + os.path.abspath(Path(argument).expanduser())
        return self.replace(**changes) if changes else self

    def task_settings(self) -> dict[str, Any]:
        """What the task brings to the settings left at their defaults, and the task named as recorded (a task
        file by its absolute path). No task is ever borrowed: the default job (no task, no data) is the
        bundled antonyms; data naming a bundled task is that task; other data without a task needs its own
        template and hand-written prompts, or a task file that holds them."""
        from promptgrad.problem.tasks import find_task, is_task_file

        problem = self.problem
        name = problem.task or (problem.data if is_bundled(problem.data) else "" if problem.data else BUNDLED_DATA)
        if not name:
            missing = [k for k in ("template", "baseline_text") if not getattr(problem, k)]
            if missing:
                example = {
                    "template": "--template '{prompt} {x} -> {y}'",
                    "baseline_text": "--baseline-text ' Your words:'",
                }
                raise UserError(
                    f"data {problem.data} comes with no task, and no task's template or hand-written prompts are "
                    f"borrowed: give {' and '.join(missing)} ({' '.join(example[k] for k in missing)}), or a task "
                    f"file that declares them (--task my-task.toml; docs/tasks.md)",
                    missing[0],
                )
            return {}
        if is_task_file(name) and all(getattr(problem, k) for k in ("data", "template", "baseline_text")):
            # nothing left for the file to fill: a run folder's settings, resolved when it started (its task file
            # may since have changed or gone), or all given; it is not read, so it changes nothing
            path = Path(name).expanduser()
            return {"task": os.path.abspath(path)} if path.exists() and os.path.abspath(path) != name else {}
        task = find_task(name)
        changes: dict[str, Any] = {"task": task.file or task.name} if (task.file or task.name) != problem.task else {}
        settings = type(self).settings()
        for key, value in task.settings().items():
            if self.get(key) == default_of(settings[key][1]) and value != self.get(key):
                changes[key] = value  # the task's stands in only for what the run left at its default
        return changes


def is_bundled(data: str) -> bool:
    from promptgrad.problem.tasks import bundled_tasks

    return data in bundled_tasks()


@functools.cache
def declared_settings(cls: type) -> dict[str, tuple[str, dataclasses.Field]]:
    out: dict[str, tuple[str, dataclasses.Field]] = {}
    for group, kind in cls.group_types().items():
        for f in fields(kind):
            assert f.name not in out, f"setting {f.name} is declared twice"
            out[f.name] = (group, f)
    return out


def validate_group(group: Any) -> None:
    """Check each setting of a group against its declaration, then the group's own rules."""
    for f in fields(group):
        value, meta = getattr(group, f.name), f.metadata
        if isinstance(value, str) and "\x00" in value:
            raise UserError(
                f"{f.name} holds a NUL byte (\\x00), which no file name or text setting may hold; remove it", f.name
            )
        if isinstance(value, float) and not math.isfinite(value) and f.name != "lr":
            raise UserError(f"{f.name} must be a finite number, got {value}", f.name)
        if meta["choices"] and value not in meta["choices"]:
            raise UserError(f"{f.name} must be one of {', '.join(meta['choices'])}, got {value!r}", f.name)
        if meta["at_least"] is not None and value < meta["at_least"]:
            bound = "must be 0 or more" if meta["at_least"] == 0 else f"must be at least {meta['at_least']:g}"
            raise UserError(f"{f.name} {bound}, got {value}", f.name)
        if meta["check"] is not None and (problem := meta["check"](value)):
            raise UserError(problem, f.name)
    if hasattr(group, "validate"):
        group.validate()


def coerce(f: dataclasses.Field, value: Any) -> Any:
    """Turn a value from TOML, a form or the command line into the field's type, or say why not."""
    if isinstance(default_of(f), list):  # several texts: a list, a JSON list (the form), or one text
        if isinstance(value, str):
            if value.strip().startswith("["):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError as e:
                    raise UserError(
                        f'{f.name} is not a JSON list of texts ({e.msg}), e.g. [" antonyms", " opposites"]', f.name
                    ) from None
            else:
                value = [value] if value else []
        if not (isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)):
            raise UserError(f"{f.name} must be a list of texts, got {value!r}", f.name)
        return list(value)
    if isinstance(f.default, bool):
        truth = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
        if isinstance(value, bool):
            return value
        if isinstance(value, (str, int)) and str(value).strip().lower() in truth:
            return truth[str(value).strip().lower()]
        raise UserError(f"{f.name} must be true or false, got {value!r}", f.name)
    kind = {int: int, float: float, str: str}[type(f.default)]
    if isinstance(value, kind) and not isinstance(value, bool):
        return value
    if kind is str:
        raise UserError(f"{f.name} must be text, got {value!r}", f.name)
    try:
        if isinstance(value, bool) or kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        if kind is int:
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        return kind(value)
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"{f.name} must be {kind.__name__}, got {value!r}", f.name) from None


# ---- docs/settings.md's settings table ---------------------------------------------------------------


def describe(f: dataclasses.Field) -> str:
    """A setting's help with its choices and default, as --help and docs/settings.md show it."""
    meta, default = f.metadata, default_of(f)
    choices = f" (one of: {', '.join(meta['choices'])})" if meta["choices"] else ""
    if isinstance(default, bool):
        shown = str(default).lower()
    elif isinstance(default, (str, list)):
        shown = repr(default) if default else "empty"
    else:
        shown = f"{default:g}"
    return f"{meta['help']}{choices}; default {shown}" + ("; defines the run" if meta["defines_run"] else "")


def settings_table(cls: type[TrainConfig] = TrainConfig) -> str:
    rows = ["| setting | group | what it does |", "| --- | --- | --- |"]
    for name, (group, f) in cls.settings().items():
        rows.append(f"| `--{name.replace('_', '-')}` | {group} | {describe(f).replace('|', '/')} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(settings_table(), end="")
