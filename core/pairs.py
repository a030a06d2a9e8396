"""Example pairs (x -> y): loading them from JSONL, CSV or `datasets`, and the seeded train/test split.

A bundled name (`antonyms`) reads `data/antonyms.jsonl` shipped with the package. A path ending in
.jsonl/.json/.csv is read locally with the standard library, so that a bad line gets an exact message.
Anything else is handed to `datasets.load_dataset` (which needs the network for hub names).
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from promptgrad.errors import UserError

BUNDLED = {"antonyms": "antonyms.jsonl"}


@dataclass(frozen=True)
class Pair:
    x: str
    y: str


@dataclass
class Split:
    train: list[Pair]
    test: list[Pair]


def bundled_path(name: str) -> Path:
    return Path(str(resources.files("promptgrad.data").joinpath(BUNDLED[name])))


def load_pairs(source: str, x_column: str = "x", y_column: str = "y") -> list[Pair]:
    if source in BUNDLED:
        rows, where = read_local(bundled_path(source)), f"bundled data set {source!r}"
    elif source.endswith((".jsonl", ".json", ".csv")) or Path(source).exists():
        rows, where = read_local(Path(source)), source
    else:
        rows, where = read_hub(source), source
    if not rows:
        raise UserError(f"data {where} holds no pairs; give a file with at least one {x_column}/{y_column} row", "data")
    missing = [c for c in (x_column, y_column) if c not in rows[0]]
    if missing:
        raise UserError(
            f"data {where} has no column {missing[0]!r} (its columns: {', '.join(map(str, rows[0]))}); "
            f"name the right ones in the settings x_column and y_column",
            "data",
        )
    pairs = []
    for row in rows:
        x, y = str(row.get(x_column) or "").strip(), str(row.get(y_column) or "").strip()
        if x and y:
            pairs.append(Pair(x, y))
    if not pairs:
        raise UserError(f"data {where} has no row with both {x_column!r} and {y_column!r} filled in", "data")
    return pairs


def read_local(path: Path) -> list[dict]:
    if not path.is_file():
        raise UserError(f"data file {path} does not exist; give a .jsonl or .csv file, or a dataset name", "data")
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".csv":
        return list(csv.DictReader(text.splitlines()))
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"data file {path} is not valid JSON (line {e.lineno}: {e.msg})", "data") from None
        for number, row in enumerate(rows, 1):
            if not isinstance(row, dict):
                raise UserError(f"data file {path} item {number} is {json.dumps(row)[:40]}, not an object like "
                                f'{{"x": "hot", "y": "cold"}}', "data")
        return rows
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise UserError(f"data file {path} line {number} is not JSON; each line must be one object", "data") from None
            if not isinstance(row, dict):
                raise UserError(f"data file {path} line {number} is {line.strip()[:40]}, not an object like "
                                f'{{"x": "hot", "y": "cold"}}', "data")
            rows.append(row)
    return rows


def read_hub(name: str) -> list[dict]:
    import datasets

    try:
        loaded = datasets.load_dataset(name, split="train")
    except Exception as e:  # datasets raises many kinds; the user needs one line either way
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot load data {name!r} ({reason}); give a local .jsonl/.csv file or the bundled 'antonyms'", "data") from None
    return list(loaded)


def split_pairs(pairs: list[Pair], test_fraction: float, seed: int, train_size: int = 0) -> Split:
    """Seeded split in which a pair and its reverse (hot->cold, cold->hot) always fall on the same side."""
    distinct = list(dict.fromkeys(pairs))  # de-duplicated, order kept
    groups: dict[frozenset[str], list[Pair]] = {}
    for p in distinct:
        groups.setdefault(frozenset((p.x.lower(), p.y.lower())), []).append(p)
    keys = sorted(groups, key=lambda k: sorted(k))
    random.Random(seed).shuffle(keys)
    n_test_target = round(test_fraction * len(distinct))
    test: list[Pair] = []
    train: list[Pair] = []
    for key in keys:
        (test if len(test) < n_test_target else train).extend(groups[key])
    if not train or not test:
        repeated = f" ({len(pairs)} rows with duplicates removed)" if len(distinct) < len(pairs) else ""
        raise UserError(f"{len(distinct)} distinct pairs{repeated} are too few to split into train and test "
                        f"(a pair and its reverse stay on one side); give more data", "data")
    if train_size:
        train = train[:train_size]
    return Split(train, test)
