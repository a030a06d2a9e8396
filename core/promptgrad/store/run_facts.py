"""What a run resolved once when it started, beyond its settings: `facts.json` in the run folder.

    precision, precision_reason   what `precision auto` (or the setting) became on the device, and why
    device                        the device the run started on (a resume may use another)
    data                          the data's source (an absolute path, the bundled name or a hub id),
                                  the number of pairs read and a hash of them in order

It is written once, when a run starts, and read back from there by resume, eval, predict, nearest and
explain: nothing decides the precision again, and nothing else stores it. The data is loaded again and
compared: a changed file would move the train/test split (test pairs would enter training, and the
hand-written prompt's score from before would be compared with the learned one's on other pairs), so a
difference is refused with one line saying what changed and how to start a new run instead.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from promptgrad.errors import UserError
from promptgrad.events import build
from promptgrad.files import atomic_write, read_text
from promptgrad.problem.pairs import Pair

FACTS = "facts.json"


def pairs_sha256(pairs: list[Pair]) -> str:
    """A hash of the pairs in the order read (the order decides the split and the batches)."""
    digest = hashlib.sha256()
    for pair in pairs:
        digest.update(json.dumps([pair.x, pair.y], ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()


@dataclass(frozen=True)
class DataFacts:
    source: str  # the data as resolved: an absolute path, the bundled name, or a hub id
    n_pairs: int  # pairs read (before duplicates are removed)
    sha256: str  # pairs_sha256 of them
    skipped_rows: int = 0  # rows without both an x and a y, left out (pairs.py)

    @staticmethod
    def of(source: str, pairs: list[Pair]) -> DataFacts:
        return DataFacts(source, len(pairs), pairs_sha256(pairs), getattr(pairs, "skipped", 0))

    def check_same_as(self, recorded: DataFacts, run: str) -> None:
        if self.sha256 == recorded.sha256:
            return
        counts = (
            f"{recorded.n_pairs} pairs then, {self.n_pairs} now"
            if self.n_pairs != recorded.n_pairs
            else f"the same {self.n_pairs} pairs in number, but not the same pairs"
        )
        moved = (
            f" (recorded as {recorded.source}, read now from {self.source})" if self.source != recorded.source else ""
        )
        raise UserError(
            f"the data of run {run} changed since it started{moved}: {counts}; its train/test split would move. "
            f"Put the original data back, or start a new run on this data from the run's prompt: "
            f"promptgrad train --data {self.source} --init run:{run}",
            "data",
        )


@dataclass(frozen=True)
class RunFacts:
    precision: str  # fp32 or bf16, never auto
    precision_reason: str
    device: str
    data: DataFacts

    def encoded(self) -> bytes:
        return (json.dumps(asdict(self), indent=2) + "\n").encode()

    def save(self, folder: Path) -> None:
        atomic_write(folder / FACTS, self.encoded())

    @staticmethod
    def load(folder: Path) -> RunFacts:
        path = folder / FACTS
        try:
            values = json.loads(read_text(path))

            facts = build(RunFacts, values)
            if facts.precision not in ("fp32", "bf16"):
                raise ValueError(f"precision {facts.precision!r}")
            return facts
        except FileNotFoundError:
            raise UserError(
                f"run folder {folder} has no {FACTS} (what its data and precision were); it was made by an older "
                f"promptgrad: start a new run from its prompt with init run:{folder}"
            ) from None
        except (ValueError, KeyError, TypeError, AttributeError):
            raise UserError(
                f"{path} is damaged (it records the run's precision and its data's source, pair count and hash); "
                f"start a new run from the run's prompt with init run:{folder}"
            ) from None
