"""The configuration pane: every TrainConfig setting as a form field, pre-filled, checked as you type.

The form holds no rules of its own: it hands its strings to `TrainConfig.from_dict`, so a bad value is
flagged beside its field with exactly the message the command line would print.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, Select, Static

from promptgrad.config import DEVICES, METHODS, MODES, PRECISIONS, SCHEDULES, TrainConfig
from promptgrad.errors import UserError
from promptgrad.models import looks_like_path

MODEL_CHOICES = ("smollm2-135m", "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")
# closed sets are a Select (true/false for every bool field); everything else is an Input
CHOICES = {"schedule": SCHEDULES, "mode": MODES, "method": METHODS, "device": DEVICES, "precision": PRECISIONS}
CHOICES |= {f.name: ("true", "false") for f in dataclasses.fields(TrainConfig) if isinstance(f.default, bool)}
SUGGESTIONS = {"model": MODEL_CHOICES, "data": ("antonyms",), "init": ("random", "vocab", "text:"),
               "device_map": ("auto",)}
HINTS = {  # short: each sits under its input, in 27 columns on a wide screen
    "model": "gpt2…gpt2-xl, id or path",
    "data": "antonyms, a file or dataset",
    "init": "random, vocab, text:…, run:<folder>",
    "epochs": "> 0: replaces steps",
    "train_size": "0: all training pairs",
    "method": "hard mode only",
    "topk": "gcg only",
    "candidates": "gcg only",
    "rescore": "gcg only",
    "patience": "gcg only",
    "device_map": "auto: split over all GPUs",
    "name": "empty: a timestamp",
    "checkpoint_minutes": "0: by steps only",
}
SECTIONS = {"model": "What to learn", "lr": "How to learn it", "mode": "Soft or hard prompt",
            "eval_every": "How often to look", "device": "Where it runs"}


def as_choice(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


class ConfigField(Vertical):
    """One setting: its name, its input, an optional hint, and the error message when it is invalid."""

    def __init__(self, name: str, value: object) -> None:
        super().__init__(classes="config-field", id=f"field-{name}")
        self.field_name = name
        self.initial = value

    def compose(self) -> ComposeResult:
        with Horizontal(classes="field-row"):
            yield Label(self.field_name, classes="field-name")
            if self.field_name in CHOICES:
                options = [(choice, choice) for choice in CHOICES[self.field_name]]
                yield Select(options, value=as_choice(self.initial), allow_blank=False, compact=True,
                             id=f"input-{self.field_name}")
            else:
                suggester = SuggestFromList(SUGGESTIONS[self.field_name]) if self.field_name in SUGGESTIONS else None
                yield Input(str(self.initial), suggester=suggester, compact=True, id=f"input-{self.field_name}")
        if self.field_name in HINTS:
            yield Static(HINTS[self.field_name], classes="field-hint")
        yield Static("", classes="field-error")

    @property
    def control(self) -> Input | Select:
        return self.query_one(f"#input-{self.field_name}")

    @property
    def value(self) -> str:
        return str(self.control.value)

    @value.setter
    def value(self, value: object) -> None:
        if isinstance(self.control, Select):
            self.control.value = as_choice(value)
        else:
            self.control.value = str(value)
            self.control.cursor_position = 0  # show a long value from its start, not its end

    def show_error(self, message: str | None) -> None:
        self.set_class(message is not None, "-invalid")
        self.query_one(".field-error", Static).update(message or "")


class ConfigForm(VerticalScroll):
    """Every TrainConfig field, in the dataclass's order, grouped as the dataclass groups them."""

    BORDER_TITLE = "Configuration"

    def __init__(self, config: TrainConfig | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.initial = config or TrainConfig()
        self.error: UserError | None = None

    def compose(self) -> ComposeResult:
        for f in dataclasses.fields(TrainConfig):
            if f.name in SECTIONS:
                yield Static(SECTIONS[f.name], classes="section")
            yield ConfigField(f.name, getattr(self.initial, f.name))

    @property
    def config_fields(self) -> dict[str, ConfigField]:
        return {field.field_name: field for field in self.query(ConfigField)}

    def values(self) -> dict[str, str]:
        return {name: field.value for name, field in self.config_fields.items()}

    def load(self, config: TrainConfig) -> None:
        for name, field in self.config_fields.items():
            field.value = getattr(config, name)
        self.check()

    def check(self) -> TrainConfig | None:
        """The config the form describes, or None with the offending field flagged and `self.error` set."""
        try:
            config = TrainConfig.from_dict(self.values())
            if looks_like_path(config.model) and not Path(config.model).expanduser().exists():
                raise UserError(f"model folder {config.model} does not exist", "model")
            self.error = None
        except UserError as e:
            config, self.error = None, e
        flagged = self.error.field if self.error else None
        for name, field in self.config_fields.items():
            if name == flagged or field.has_class("-invalid"):
                field.show_error(str(self.error) if name == flagged else None)
        self.set_class(self.error is not None, "-invalid")
        return config

    def flag(self, field: str, message: str) -> None:
        """Flag a field with an error found outside the form (by the run: a missing data file, say)."""
        if field in self.config_fields:
            self.config_fields[field].show_error(message)

    def set_locked(self, locked: bool) -> None:
        """Visibly locked while a run goes on: edits then could not change it."""
        self.disabled = locked
        self.border_title = "Configuration · locked during the run" if locked else "Configuration"

    def focus_error(self) -> None:
        if self.error and self.error.field in self.config_fields:
            field = self.config_fields[self.error.field]
            field.control.focus()
            self.scroll_to_widget(field)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.check()

    def on_select_changed(self, event: Select.Changed) -> None:
        self.check()
