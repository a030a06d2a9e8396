"""Helpers the test modules share (fixtures live in conftest.py): a one-line error read back, a pickle that
would run a command, a finished run's records for the TUI to replay."""

from __future__ import annotations

import os
import time
from pathlib import Path

from promptgrad.events import Evaluation, Finished, Started, Step


def one_line_error(capsys, code: int, expected: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and expected in err[0] and "Traceback" not in err[0], (code, err)
    return err[0]


class Payload:
    """What a crafted checkpoint could carry: unpickling it would run `touch`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def finished_events(
    steps: int = 12,
    learned: float = 2.0,
    hand: float = 3.7,
    untrained: float = 4.7,
    subset: tuple[float, float] = (4.2, 3.2),
) -> list:
    """A finished run's records: losses falling from 5 to about `learned`, the references far apart, the
    learned prompt scored on the subset at steps 4 and 8 (`subset`) and on all pairs at the end."""
    events = [Started("runs/replayed", "m", "cpu", "fp32", 40, 10, steps, 0, 10)]
    for step in range(1, steps + 1):
        events.append(Step(step, step / 10, 5 - 3 * step / steps, 0.01, 30.0, step, steps - step))
        if step in (4, 8):
            events.append(Evaluation(step, "learned", subset[step // 4 - 1], 0.1, 8, None))
    events += [
        Evaluation(0, "hand-written", hand, 0.05, 10, None, " antonyms"),
        Evaluation(0, "untrained", untrained, 0.02, 10, None),
        Evaluation(steps, "learned", learned, 0.3, 10, learned),
        Finished(steps, False, learned, 0.3, "runs/replayed/prompt.safetensors"),
    ]
    return events


async def wait_for(pilot, condition, timeout: float = 60.0, what: str = "condition") -> None:
    """Let a Pilot-driven app run until `condition()` holds, or fail saying what never came."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


TINY_PAIRS = [
    ("hot", "cold"),
    ("cold", "hot"),
    ("big", "small"),
    ("small", "big"),
    ("up", "down"),
    ("down", "up"),
    ("fast", "slow"),
    ("slow", "fast"),
    ("light", "dark"),
    ("dark", "light"),
    ("old", "new"),
    ("new", "old"),
    ("wet", "dry"),
    ("dry", "wet"),
    ("good", "bad"),
    ("bad", "good"),
    ("high", "low"),
    ("low", "high"),
    ("rich", "poor"),
    ("poor", "rich"),
    ("hard", "soft"),
    ("soft", "hard"),
    ("early", "late"),
    ("late", "early"),
]


def logged(events) -> list:
    """The events a run logs to metrics.jsonl: all but the Progress ones, which are only shown."""
    return [e for e in events if e.logged]


def fill_prompt(context: list[int], prompt_ids: list[int]) -> list[int]:
    """The context with the hand-written prompt's tokens at its prompt positions (marked -1)."""
    out, j = [], 0
    for t in context:
        if t < 0:
            out.append(prompt_ids[j])
            j += 1
        else:
            out.append(t)
    return out


def teach(model_folder: Path, sequences: list, passes: int) -> None:
    """Train every weight of the model in `model_folder` on the token sequences (Adam, seeded, in order)
    until it writes them, and save it there: a tiny model that answers as a test needs it to."""
    import torch
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel.from_pretrained(model_folder)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    for _ in range(passes):
        for ids in sequences:
            loss = model(input_ids=ids[None], labels=ids[None]).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.save_pretrained(model_folder)


def finished_run(config) -> Path:
    """Train `config` to its end in this process; its run folder."""
    from promptgrad.train.loop import train  # here: the loop brings torch, and most helpers need none

    events = list(train(config))
    assert isinstance(events[-1], Finished), events[-1]
    return Path(config.machine.runs_dir) / config.machine.name
