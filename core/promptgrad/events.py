"""The typed events that the training loop yields; the CLI, the TUI and metrics.jsonl all consume them.

Each event is a small frozen dataclass. `to_json` gives the line written to metrics.jsonl and
`event_from_json` reads it back, which is how a viewer replays a run folder.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar

from promptgrad.numbers import read_float, read_int


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "event"
    logged: ClassVar[bool] = True  # written to metrics.jsonl (Progress is only shown)

    def to_json(self) -> dict[str, Any]:
        return {"event": self.kind, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class Started(Event):
    """The run is set up: data split, model loaded, run folder made."""

    kind: ClassVar[str] = "started"
    run_dir: str
    model: str
    device: str
    precision: str
    n_train: int
    n_test: int
    total_steps: int
    start_step: int  # > 0 when resumed
    steps_per_epoch: int
    precision_reason: str = ""  # why this precision (precision.py); the concrete value is in config.toml
    skipped_rows: int = 0  # data rows without both an x and a y, left out
    n_validation: int = 0  # training pairs held out to choose the prompt by (val_fraction), not in n_train
    no_majority: str = ""  # why the run has no majority baseline (baselines.py), in one line; "" when it has one


@dataclass(frozen=True)
class Progress(Event):
    """Work between steps that takes a while (loading the model, scoring prompts): what it is, and how
    far it has got (`total` 0: no count). Shown by the CLI and the TUI, not written to metrics.jsonl."""

    kind: ClassVar[str] = "progress"
    logged: ClassVar[bool] = False
    step: int
    task: str
    done: int
    total: int


@dataclass(frozen=True)
class Step(Event):
    kind: ClassVar[str] = "step"
    step: int  # 1-based count of optimiser steps done
    epoch: float
    loss: float  # training loss of this step's batch (mean cross-entropy per target token)
    lr: float
    examples_per_s: float
    elapsed_s: float
    eta_s: float


@dataclass(frozen=True)
class Evaluation(Event):
    """Test loss and accuracy of one prompt, or of a baseline. `prompt` names it: learned, hand-written,
    untrained, k-shot (demonstrations before the query, baselines.py) or majority (always the most common
    training answer: no language model, so no test loss). The intervals are 95% percentile bootstraps
    over the pairs (intervals.py); None in records written before they existed."""

    kind: ClassVar[str] = "evaluation"
    step: int
    prompt: str
    test_loss: float | None  # None for the majority answer
    accuracy: float  # the greedy answer, as text, is the target (answer_rule.py states the rule)
    n_pairs: int
    best_test_loss: float | None  # best learned-prompt test loss so far (None before the first)
    text: str = ""  # a hand-written prompt's wording (a run may compare several), "3-shot", the majority answer
    loss_low: float | None = None
    loss_high: float | None = None
    accuracy_low: float | None = None
    accuracy_high: float | None = None


@dataclass(frozen=True)
class Validation(Event):
    """The learned prompt on the validation pairs (carved from the training pairs, never the test pairs):
    the run keeps the prompt with the lowest validation loss as its result, and ends early when
    `stop_patience` scores in a row brought none lower."""

    kind: ClassVar[str] = "validation"
    step: int
    loss: float  # mean cross-entropy per target token on the validation pairs
    accuracy: float
    n_pairs: int
    best_loss: float  # the lowest validation loss so far (this one's, if it is the best)
    best_step: int  # the step of the prompt that scored it: the one kept
    without_gain: int  # scores since the best one (0: this is the best)
    stopping: bool = False  # patience ran out: training ends here, with the prompt of best_step


@dataclass(frozen=True)
class Prediction:
    x: str
    expected: str
    predicted: str
    correct: bool


@dataclass(frozen=True)
class Predictions(Event):
    kind: ClassVar[str] = "predictions"
    step: int
    rows: list[Prediction]


@dataclass(frozen=True)
class NearestToken:
    token: str
    token_id: int
    cosine: float


@dataclass(frozen=True)
class NearestTokens(Event):
    """For each prompt position, the vocabulary tokens closest by cosine similarity."""

    kind: ClassVar[str] = "nearest_tokens"
    step: int
    positions: list[list[NearestToken]]


@dataclass(frozen=True)
class Reading(Event):
    """The model's own reading of the soft prompt (explain.py): what it writes for each position's vector
    put in an identity context, and for all of them together."""

    kind: ClassVar[str] = "reading"
    step: int
    positions: list[str]
    whole: str


@dataclass(frozen=True)
class HardPromptFound(Event):
    """Hard mode: a prompt of real tokens better than any before it, judged on a held-out slice of the
    training pairs (never the test set). `text` is what to paste in place of the template's " {prompt}"."""

    kind: ClassVar[str] = "hard_prompt"
    step: int
    ids: list[int]
    tokens: list[str]  # each position's token as text
    text: str
    train_loss: float  # mean cross-entropy per target token on the held-out training pairs
    nats_per_token: float = 0.0  # the prompt's own cross-entropy after the template text before it (fluency.py)


@dataclass(frozen=True)
class FrontPoint:
    ids: list[int]
    text: str
    train_loss: float  # task loss on the held-out training pairs
    nats_per_token: float


@dataclass(frozen=True)
class ParetoFront(Event):
    """Hard mode: the prompts seen so far that no other beats on both held-out task loss and fluency
    (nats/token), lowest task loss first. Logged whenever it changes."""

    kind: ClassVar[str] = "pareto_front"
    step: int
    points: list[FrontPoint]


@dataclass(frozen=True)
class Extended(Event):
    """A resumed run was given another length; from `step` the learning rate decays from `lr` to zero
    at `total_steps` (schedule.py), so it never jumps up; or, with `new_peak` (extend_lr, for a finished
    run whose learning rate had decayed to 0), it warms up over `warmup_steps` to the new peak `lr`,
    then decays to zero at `total_steps`."""

    kind: ClassVar[str] = "extended"
    step: int
    previous_total_steps: int
    total_steps: int
    lr: float
    warmup_steps: int = 0
    new_peak: bool = False

    def describe(self) -> str:
        """What the learning rate does over the added steps, in words (the CLI and the TUI say it)."""
        if self.new_peak:
            warmup = f"warms up over {self.warmup_steps} steps to" if self.warmup_steps else "starts at"
            return (
                f"the learning rate {warmup} a new peak of {self.lr:.3g}, then decays to 0 by step {self.total_steps}"
            )
        return f"the learning rate decays from {self.lr:.3g} to 0 by step {self.total_steps}"


@dataclass(frozen=True)
class Checkpoint(Event):
    kind: ClassVar[str] = "checkpoint"
    step: int
    path: str


@dataclass(frozen=True)
class Finished(Event):
    kind: ClassVar[str] = "finished"
    step: int
    stopped: bool  # True when the stop signal ended it early
    test_loss: float | None  # on the whole test set; None when stopped early (`promptgrad eval` gives it)
    accuracy: float | None
    prompt_path: str
    stopped_early: bool = False  # the validation loss had not improved for stop_patience scores
    best_step: int | None = None  # with a validation split: the step of the prompt kept (the best on it), else None
    accuracy_rule: str = (
        ""  # how answers were judged: "exact text", "ignoring case" (answer_rule.py); "": older records
    )


@dataclass(frozen=True)
class Failed(Event):
    kind: ClassVar[str] = "failed"
    step: int
    message: str
    user_error: bool  # bad input the user can fix (exit status 2) rather than a runtime failure
    traceback: str = ""  # a bug's full traceback (also in the run folder's traceback.txt); empty for user errors
    field: str = ""  # the setting at fault, for a user error that names one (a form flags it)


@dataclass(frozen=True)
class TrackerFailed(Event):
    """An experiment tracker (report_to, trackers.py) failed; the run goes on without it. Shown, not
    written to metrics.jsonl: the trackers mirror the run, its folder is the record."""

    kind: ClassVar[str] = "tracker_failed"
    logged: ClassVar[bool] = False
    step: int
    tracker: str
    message: str


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        Started,
        Progress,
        Step,
        Evaluation,
        Validation,
        Predictions,
        NearestTokens,
        Reading,
        HardPromptFound,
        ParetoFront,
        Extended,
        Checkpoint,
        Finished,
        Failed,
    )
}

# fields that are never NaN nor infinite (a proportion of pairs); a loss may be (a diverged run), so only these
FINITE_ONLY = {"accuracy", "accuracy_low", "accuracy_high"}


def typed(hint: Any, value: Any, where: str) -> Any:
    """`value` read from JSON, checked against the field's type hint (nested records built): a line of
    metrics.jsonl with a string where a number belongs is refused here, not when a pane draws it."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        return typed(next(a for a in args if a is not type(None)), value, where)
    if origin is list:
        if not isinstance(value, list):
            raise TypeError(f"{where} is not a list")
        return [typed(args[0], v, where) for v in value]
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise TypeError(f"{where} is not an object")
        return build(hint, value)
    if hint is int:  # numbers through the one parser of numbers read back (numbers.py): a DamagedNumber is a ValueError
        return read_int(value, where)
    if hint is float:
        return read_float(value, where, finite=where.rsplit(".", 1)[-1] in FINITE_ONLY)
    ok = {bool: lambda v: isinstance(v, bool), str: lambda v: isinstance(v, str)}[hint]
    if not ok(value):
        raise TypeError(f"{where} is {value!r}, not {hint.__name__}")
    return value


def build(cls: type, obj: dict[str, Any]) -> Any:
    """A dataclass of `cls` from JSON values, each checked against its type (nested dataclasses built)."""
    if not isinstance(obj, dict):
        raise TypeError(f"{cls.__name__} is not an object")
    hints = typing.get_type_hints(cls)  # resolved in cls's own module, where its nested record types live
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(obj) - names
    if unknown:
        raise TypeError(f"{cls.__name__} has no field {sorted(unknown)[0]!r}")
    return cls(**{name: typed(hints[name], value, f"{cls.__name__}.{name}") for name, value in obj.items()})


def event_from_json(obj: dict[str, Any]) -> Event:
    """The event of one metrics.jsonl line; TypeError (or KeyError) when it is not a well-formed event."""
    if not isinstance(obj, dict):
        raise TypeError("not a JSON object")
    obj = dict(obj)
    return build(EVENT_TYPES[obj.pop("event")], obj)
