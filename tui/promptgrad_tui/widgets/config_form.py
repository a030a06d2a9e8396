"""The configuration pane: every TrainConfig setting as a form field, pre-filled, checked as you type.

The form holds no rules of its own and no list of settings: its sections, fields, hints, choice widgets
and suggestions all come from the settings' declarations (config.py), and it hands its strings to
`TrainConfig.from_dict`, so a bad value is flagged beside its field with exactly the message the command
line would print.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, Select, Static

from promptgrad.config import TrainConfig
from promptgrad.errors import UserError
from promptgrad.model.models import looks_like_path


def choices_of(f: dataclasses.Field) -> tuple[str, ...]:
    """A closed set is a Select (true/false for every bool setting); anything else is an Input."""
    return f.metadata["choices"] or (("true", "false") if isinstance(f.default, bool) else ())


def as_text(value: object) -> str:
    """A setting's value as the form shows it: true/false, a JSON list for several texts (their spaces seen)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False) if value else ""
    return str(value)


class ConfigField(Vertical):
    """One setting: its name, its input, an optional hint, and the error message when it is invalid."""

    def __init__(self, declaration: dataclasses.Field, value: object) -> None:
        super().__init__(classes="config-field", id=f"field-{declaration.name}")
        self.field_name = declaration.name
        self.declaration = declaration
        self.initial = value
        self.tooltip = declaration.metadata["help"]

    def compose(self) -> ComposeResult:
        meta = self.declaration.metadata
        with Horizontal(classes="field-row"):
            yield Label(self.field_name, classes="field-name")
            if choices := choices_of(self.declaration):
                yield Select(
                    [(choice, choice) for choice in choices],
                    value=as_text(self.initial),
                    allow_blank=False,
                    compact=True,
                    id=f"input-{self.field_name}",
                )
            else:
                suggester = SuggestFromList(meta["suggestions"]) if meta["suggestions"] else None
                yield Input(as_text(self.initial), suggester=suggester, compact=True, id=f"input-{self.field_name}")
        if meta["hint"]:
            yield Static(meta["hint"], classes="field-hint")
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
            self.control.value = as_text(value)
        else:
            self.control.value = as_text(value)
            self.control.cursor_position = 0  # show a long value from its start, not its end

    def show_error(self, message: str | None) -> None:
        self.set_class(message is not None, "-invalid")
        self.query_one(".field-error", Static).update(message or "")


def wrapped(value: str, width: int) -> list[str]:
    """A value in lines of `width`, broken at spaces and after '/' (a path stays readable), a word longer than
    a line after a '-', '_' or '.' in it, never elsewhere inside a word; what still does not fit is cut with
    an ellipsis."""
    tokens = [
        piece
        for t in re.split(r"(?<=[ /])", value)
        if t
        for piece in ([t] if len(t.rstrip()) <= width else re.split(r"(?<=[-_.])", t))
        if piece
    ]
    lines = [""]
    for token in tokens:
        if len(lines[-1]) + len(token.rstrip()) > width and lines[-1]:
            lines.append("")
        lines[-1] += token if len(token.rstrip()) <= width else token[: width - 1] + "…"
    return [line.rstrip() for line in lines]


class LockedSummary(Static):
    """The form while a run goes on, narrowed to give room to the chart: every setting as `name value`,
    the value on the lines under its name where it does not fit beside it; nothing cut inside a word.
    (The fields themselves, 20 columns of names, left 10 for a value: `smollm2-1`, `run:<fold`.)"""

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.sections: list[tuple[str, list[tuple[str, str]]]] = []
        self.display = False  # shown while the form is locked

    def show(self, sections: list[tuple[str, list[tuple[str, str]]]]) -> None:
        self.sections = sections
        self.refresh(layout=True)

    def render(self) -> Text:
        width = max(10, self.size.width or 30)
        out: list[Text] = []
        for title, values in self.sections:
            out += [Text(line, style="bold") for line in wrapped(title, width)]
            for name, value in values:
                value = value or "–"
                if len(name) + 1 + len(value) <= width:
                    out.append(Text.assemble((name, "dim"), " ", value))
                else:
                    out.append(Text(name, style="dim"))
                    out += [Text("  " + line) for line in wrapped(value, width - 2)]
        return Text("\n").join(out)


class ConfigForm(VerticalScroll):
    """Every setting, in the order declared, one section per group (titled by the group's docstring)."""

    BORDER_TITLE = "Configuration"
    can_focus = False  # its fields take the cursor; the form itself would be a focus stop that shows none

    def __init__(
        self, config: TrainConfig | None = None, config_class: type[TrainConfig] = TrainConfig, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.config_class = config_class
        self.initial = config or config_class()
        self.error: UserError | None = None
        self.run_flags: dict[str, str] = {}  # fields a failed run flagged, by their message

    def compose(self) -> ComposeResult:
        yield LockedSummary(id="locked-summary")
        for group, kind in self.config_class.group_types().items():
            yield Static(kind.__doc__.strip(), classes="section")
            for f in dataclasses.fields(kind):
                yield ConfigField(f, self.initial.get(f.name))

    @property
    def config_fields(self) -> dict[str, ConfigField]:
        return {field.field_name: field for field in self.query(ConfigField)}

    def values(self) -> dict[str, str]:
        return {name: field.value for name, field in self.config_fields.items()}

    def load(self, config: TrainConfig) -> None:
        for name, field in self.config_fields.items():
            field.value = config.get(name)
        self.check()

    def check(self) -> TrainConfig | None:
        """The config the form describes, or None with the offending field flagged and `self.error` set."""
        try:
            config = self.config_class.from_dict(self.values())
            if looks_like_path(config.problem.model) and not Path(config.problem.model).expanduser().exists():
                raise UserError(f"model folder {config.problem.model} does not exist", "model")
            self.error = None
        except UserError as e:
            config, self.error = None, e
        flagged = self.error.field if self.error else None
        for name, field in self.config_fields.items():
            if name in self.run_flags:  # the failure banner still names it: kept until it is edited
                continue
            if name == flagged or field.has_class("-invalid"):
                field.show_error(str(self.error) if name == flagged else None)
        self.set_class(self.error is not None, "-invalid")
        return config

    def flag(self, field: str, message: str) -> None:
        """Flag a field with an error found outside the form (by the run: a missing data file, say); it
        stays flagged, as the failure banner says, until that field is edited or the next run starts."""
        if field in self.config_fields:
            self.run_flags[field] = message
            self.config_fields[field].show_error(message)

    def clear_run_flags(self) -> None:
        flags, self.run_flags = self.run_flags, {}
        for name in flags:
            self.config_fields[name].show_error(None)
        self.check()

    def set_locked(self, locked: bool) -> None:
        """Visibly locked while a run goes on: edits then could not change it."""
        self.disabled = locked
        self.border_title = "Configuration · locked" if locked else "Configuration"
        # locked: the settings as text, each value whole (the narrowed fields cut them mid-word); shown
        # and hidden inline, not by a class, which would restyle every widget of the form
        summary = self.query_one(LockedSummary)
        if locked:
            values = self.values()
            summary.show(
                [
                    (kind.__doc__.strip(), [(f.name, values[f.name]) for f in dataclasses.fields(kind)])
                    for kind in self.config_class.group_types().values()
                ]
            )
        for child in self.children:
            child.display = locked if child is summary else not locked
        self.scroll_home(animate=False)

    def show_field(self, name: str | None) -> None:
        """Bring a (flagged) field into view without giving it the cursor: after a refused ctrl+r a key meant
        for a dialog that never came (y) would otherwise be typed over that field's value."""
        if name in self.config_fields:
            self.scroll_to_widget(self.config_fields[name])

    def on_input_changed(self, event: Input.Changed) -> None:
        self.edited(event.input)

    def on_select_changed(self, event: Select.Changed) -> None:
        self.edited(event.select)

    def edited(self, control) -> None:
        name = (control.id or "").removeprefix("input-")
        if self.run_flags.pop(name, None) is not None:
            self.config_fields[name].show_error(None)
        self.check()
