"""Example pairs (x -> y): loading them from JSONL, CSV, parquet or `datasets`, and the seeded train/test split.

A bundled task's name (`antonyms`, tasks.py) reads its file shipped with the package. A path ending in
.jsonl/.json/.csv is read locally with the standard library, so that a bad line gets an exact message. A
.parquet file or a folder written by `save_to_disk` is read by `datasets`. Anything else is handed to
`datasets.load_dataset` as a hub name; when the hub cannot be reached (or offline mode is set) only the
local cache is consulted, so that a missing data set is said at once rather than after retries.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from promptgrad.errors import UserError
from promptgrad.files import read_bytes
from promptgrad.hub import hub_reachable
from promptgrad.problem.tasks import Task, bundled_tasks


@dataclass(frozen=True)
class Pair:
    x: str
    y: str


@dataclass
class Split:
    train: list[Pair]
    test: list[Pair]
    validation: list[Pair] = field(
        default_factory=list
    )  # carved from the training pairs (val_fraction), never trained on


class PairList(list[Pair]):
    """The pairs `load_pairs` read (a plain list of Pair to its callers), and how many rows it skipped."""

    skipped: int = 0


def load_pairs(source: str, x_column: str = "x", y_column: str = "y") -> PairList:
    """Read the pairs from a bundled task's name, a local .jsonl/.json/.csv file (read here, so a bad line
    gets an exact message), a .parquet file or a folder saved by `save_to_disk` (read by `datasets`), or
    a Hugging Face dataset name.

    A cell is used as text: a string as written (stripped), an integer as its digits; any other value (a
    float, a boolean, a list) is refused with the row and column, since str() would alter it (1.50 -> 1.5).
    A row whose x or y is missing, null or empty is skipped (sparse data sets are fine); the result is a
    `PairList`, a list of Pair whose `skipped` attribute says how many rows were skipped.
    """
    path = Path(source).expanduser()
    if source in bundled_tasks():
        rows, where = read_local(bundled_tasks()[source].path), f"bundled task {source!r}"
    elif source.endswith(".parquet") or path.is_dir():
        rows, where = read_with_datasets(path), source
    elif source.endswith((".jsonl", ".json", ".csv")) or path.exists():
        rows, where = read_local(path), source
    else:
        rows, where = read_hub(source), source
    if not rows:
        raise UserError(f"data {where} holds no pairs; give a file with at least one {x_column}/{y_column} row", "data")
    first = rows[0][1]
    missing = [c for c in (x_column, y_column) if c not in first]
    if missing:
        raise UserError(
            f"data {where} has no column {missing[0]!r} (its columns: {', '.join(map(str, first))}); "
            f"name the right ones in the settings x_column and y_column",
            "data",
        )
    pairs = PairList()
    for at, row in rows:
        x, y = cell_text(row.get(x_column), at, x_column), cell_text(row.get(y_column), at, y_column)
        if x and y:
            pairs.append(Pair(x, y))
        else:
            pairs.skipped += 1
    if not pairs:
        raise UserError(f"data {where} has no row with both {x_column!r} and {y_column!r} filled in", "data")
    return pairs


def cell_text(value: object, at: str, column: str) -> str:
    """The cell as the text to train on; "" for a missing or null cell (its row is skipped)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, (float, Decimal)):  # JSON numbers arrive as Decimal, so "1.50" is shown as written
        what, shown = "the number", str(value)
    elif isinstance(value, bool):
        what, shown = "the boolean", json.dumps(value)
    else:
        what = {list: "a list", dict: "an object"}.get(type(value), f"a {type(value).__name__}")
        shown = json.dumps(value, default=str)[:40]
        raise UserError(f"{at}: column {column!r} is {what} {shown}, not text; give one string per cell", "data")
    raise UserError(
        f'{at}: column {column!r} is {what} {shown}, not text; write it as a string ("{shown}") '
        f"so it is used as written",
        "data",
    )


def read_local(path: Path) -> list[tuple[str, dict]]:
    """The rows of a .jsonl, .json or .csv file, each with where it is ("data file X line 7") for messages."""
    text = read_text(path)
    if path.suffix == ".csv":
        # The csv module splits the lines itself, so a quoted field keeps its newlines (as with newline="").
        reader = csv.DictReader(io.StringIO(text, newline=""))
        try:
            return [(f"data file {path} line {reader.line_num}", row) for row in reader]
        except csv.Error as e:
            raise UserError(f"data file {path} line {reader.line_num} is not valid CSV ({e})", "data") from None
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text, parse_float=Decimal)
        except ValueError as e:
            raise UserError(
                f"data file {path} is not valid JSON (line {getattr(e, 'lineno', '?')}: {getattr(e, 'msg', e)})", "data"
            ) from None
        for number, row in enumerate(rows, 1):
            if not isinstance(row, dict):
                raise UserError(
                    f"data file {path} item {number} is {json.dumps(row, default=str)[:40]}, not an "
                    f'object like {{"x": "hot", "y": "cold"}}',
                    "data",
                )
        return [(f"data file {path} item {number}", row) for number, row in enumerate(rows, 1)]
    rows = []
    # Only "\n" ends a JSONL line: str.splitlines() would also split inside a string holding U+2028 or U+0085.
    for number, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if line.strip():
            try:
                row = json.loads(line, parse_float=Decimal)
            except ValueError:
                raise UserError(
                    f"data file {path} line {number} is not JSON; each line must be one object", "data"
                ) from None
            if not isinstance(row, dict):
                raise UserError(
                    f"data file {path} line {number} is {line.strip()[:40]}, not an object like "
                    f'{{"x": "hot", "y": "cold"}}',
                    "data",
                )
            rows.append((f"data file {path} line {number}", row))
    return rows


def read_text(path: Path) -> str:
    """The file as text: UTF-8, with or without a BOM. Anything but a regular file is refused before reading
    (files.py): a FIFO or a device would block or never end."""
    try:
        data = read_bytes(path, follow_links=True)
    except FileNotFoundError:
        raise UserError(
            f"data file {path} does not exist; give a .jsonl or .csv file, or a dataset name", "data"
        ) from None
    except UserError:  # not a regular file (files.py)
        raise UserError(f"data file {path} is not a regular file; give a .jsonl, .json or .csv file", "data") from None
    except OSError as e:
        raise UserError(
            f"data file {path} cannot be opened ({e.strerror}); give a readable .jsonl or .csv file", "data"
        ) from None
    try:
        # As utf-8-sig, but the error's offset counts from the start of the file, BOM included.
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise UserError(
            f"data file {path} line {line} (byte {e.start}) is not valid UTF-8; re-save the file as UTF-8", "data"
        ) from None


def read_with_datasets(path: Path) -> list[tuple[str, dict]]:
    """A .parquet file, or a folder written by `Dataset.save_to_disk` (its train split, if it holds several)."""
    import datasets

    if not path.exists():
        raise UserError(
            f"data {path} does not exist; give a .jsonl/.csv/.parquet file or a save_to_disk folder", "data"
        )
    verbosity = datasets.utils.logging.get_verbosity()
    datasets.utils.logging.set_verbosity(
        datasets.utils.logging.CRITICAL
    )  # its logged error would be a second line: ours says it
    try:
        if path.is_dir():
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                if "train" not in loaded:
                    raise UserError(
                        f"data folder {path} holds the splits {', '.join(loaded)} but no 'train'; save one "
                        f"split, or name it train",
                        "data",
                    )
                loaded = loaded["train"]
        else:
            loaded = datasets.load_dataset("parquet", data_files=str(path), split="train")
    except UserError:
        raise
    except Exception as e:  # datasets raises many kinds; the user needs one line either way
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        kind = "a folder saved by datasets' save_to_disk" if path.is_dir() else "a parquet file"
        raise UserError(f"data {path} cannot be read as {kind} ({reason})", "data") from None
    finally:
        datasets.utils.logging.set_verbosity(verbosity)
    return [(f"data {path} row {number}", row) for number, row in enumerate(loaded, 1)]


def read_hub(name: str) -> list[tuple[str, dict]]:
    import datasets
    from huggingface_hub import constants

    # Unreachable, the hub would be retried for about 90 s; offline, only the local cache is looked at.
    offline = (
        any(
            os.environ.get(v, "").upper() in ("1", "ON", "YES", "TRUE")
            for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
        )
        or not hub_reachable()
    )
    saved = datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
    if offline:  # both libraries read the setting from the environment once, at import: set it for this call
        datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
    try:
        loaded = datasets.load_dataset(name, split="train")
    except Exception as e:  # datasets raises many kinds; the user needs one line either way
        if offline and isinstance(e, (ConnectionError, FileNotFoundError)):  # what "not in the cache" raises
            raise UserError(
                f"cannot load data {name!r}: the Hugging Face hub cannot be reached from here (or offline "
                f"mode is set) and it is not in the local cache; give a local .jsonl/.csv file or the "
                f"bundled 'antonyms'",
                "data",
            ) from None
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise UserError(
            f"cannot load data {name!r} ({reason}); give a local .jsonl/.csv file or the bundled 'antonyms'", "data"
        ) from None
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = saved
    return [(f"data {name!r} row {number}", row) for number, row in enumerate(loaded, 1)]


def reverse_groups(pairs: list[Pair]) -> list[list[Pair]]:
    """The pairs grouped so that a pair and its reverse (hot->cold, cold->hot) are one group, in a fixed order."""
    groups: dict[frozenset[str], list[Pair]] = {}
    for p in pairs:
        groups.setdefault(frozenset((p.x.lower(), p.y.lower())), []).append(p)
    return [groups[k] for k in sorted(groups, key=lambda k: sorted(k))]


def split_pairs(
    pairs: list[Pair], test_fraction: float, seed: int, train_size: int = 0, val_fraction: float = 0.0
) -> Split:
    """Seeded split in which a pair and its reverse (hot->cold, cold->hot) always fall on the same side;
    `val_fraction` > 0 then holds out that share of the training pairs for validation (`carve_validation`)."""
    distinct = list(dict.fromkeys(pairs))  # de-duplicated, order kept
    groups = reverse_groups(distinct)
    random.Random(seed).shuffle(groups)
    n_test_target = round(test_fraction * len(distinct))
    test: list[Pair] = []
    train: list[Pair] = []
    for group in groups:
        (test if len(test) < n_test_target else train).extend(group)
    if not train or not test:
        repeated = f" ({len(pairs)} rows with duplicates removed)" if len(distinct) < len(pairs) else ""
        raise UserError(
            f"{len(distinct)} distinct pairs{repeated} are too few to split into train and test "
            f"(a pair and its reverse stay on one side); give more data",
            "data",
        )
    if train_size:
        train = train[:train_size]
    if not val_fraction:
        return Split(train, test)
    train, validation = carve_validation(train, val_fraction, seed)
    return Split(train, test, validation)


def carve_validation(train: list[Pair], val_fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """(training pairs left, validation pairs): a seeded share of the training pairs, at least one, a pair
    and its reverse on one side as in the test split; both lists keep the order of `train`. The test pairs
    take no part: early stopping, which chooses on these, never sees them."""
    groups = reverse_groups(train)
    random.Random(f"validation {seed}").shuffle(groups)
    wanted, held = max(1, round(val_fraction * len(train))), set()
    for group in groups:
        if len(held) >= wanted:
            break
        held.update(group)
    rest = [p for p in train if p not in held]
    if not rest:
        raise UserError(
            f"val_fraction {val_fraction:g} leaves none of the {len(train)} training pairs to train on (a pair "
            f"and its reverse stay on one side); lower val_fraction or give more data",
            "val_fraction",
        )
    return rest, [p for p in train if p in held]


@dataclass(frozen=True)
class TaskPreview:
    n_pairs: int
    pairs: list  # the first few Pair, to show


def task_preview(task: Task, n: int = 5) -> TaskPreview:
    """How many pairs a task has and its first `n`, read from its file (no model, no split)."""
    pairs = load_pairs(task.data_setting, task.x_column, task.y_column)
    return TaskPreview(len(pairs), pairs[:n])
