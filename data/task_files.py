"""What the task builders (data/build_*.py) share: writing a task file, capping a large task.

A task file is data/tasks/<name>.jsonl: one {"x": ..., "y": ...} object a line, UTF-8 with accents kept
(ensure_ascii=False), sorted and de-duplicated, so that rebuilding gives the same bytes. No task keeps a
pair whose answer is its input ("Chile" -> "Chile", "sheep" -> "sheep"): a prompt that makes the model
parrot its input, the commonest failure, would score on them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
MAX_PAIRS = 8000  # a task this size trains and evaluates in minutes on a CPU; more adds little
MIN_PAIRS = 40  # fewer leaves too small a test split to compare prompts on


def stable_hash(x: str, y: str) -> str:
    """A tie-breaker that is the same on every machine and Python (unlike hash()) and favours no letter."""
    return hashlib.sha256(f"{x}\t{y}".encode()).hexdigest()


def write_pairs(
    name: str,
    pairs: Iterable[tuple[str, str]],
    out_dir: Path = TASKS_DIR,
    weight: Callable[[str, str], int] = lambda x, y: 0,
) -> int:
    """Write data/tasks/<name>.jsonl (sorted, de-duplicated, capped), print and return its number of pairs.

    Over MAX_PAIRS, the pairs with the highest `weight(x, y)` (a word frequency) are kept, ties broken by
    stable_hash rather than alphabetically, so that a cut through words of equal weight keeps a spread of
    the alphabet, not the words from "a" to "m".
    """
    given = set(pairs)
    rows = [(x, y) for x, y in given if x != y]
    for x, y in rows:
        if not (x.strip() and y.strip()) or x != x.strip() or y != y.strip():
            raise ValueError(f"{name}: empty or padded text in pair {(x, y)!r}")
    notes = [f"{len(given) - len(rows)} with y == x left out"] if len(given) > len(rows) else []
    if len(rows) > MAX_PAIRS:
        notes.append(f"the {MAX_PAIRS} most frequent of {len(rows)} kept")
        rows = sorted(rows, key=lambda p: (-weight(*p), stable_hash(*p)))[:MAX_PAIRS]
    rows.sort()
    if len(rows) < MIN_PAIRS:
        print(f"{name}: only {len(rows)} pairs (under {MIN_PAIRS}); not written")
        return len(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.jsonl"
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for x, y in rows:
            f.write(json.dumps({"x": x, "y": y}, ensure_ascii=False) + "\n")
    print(f"{name}: {len(rows)} pairs" + (f" ({'; '.join(notes)})" if notes else "") + f" -> {path}")
    return len(rows)
