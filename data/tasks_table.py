"""Print the task library (data/tasks.toml) as a Markdown table for docs/tasks.md.

    python data/tasks_table.py

One row per task: its name, number of pairs, an example pair, the template and where the data came from
with its licence. The example is the middle line of the task's file: fixed, and not always an "a" word.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent


def read_tasks(data_dir: Path = DATA_DIR) -> dict[str, dict]:
    with open(data_dir / "tasks.toml", "rb") as f:
        return tomllib.load(f)


def markdown_table(data_dir: Path = DATA_DIR) -> str:
    rows = ["| task | pairs | example | template | source / licence |", "| --- | --- | --- | --- | --- |"]
    for name, task in read_tasks(data_dir).items():
        lines = (data_dir / task["data"]).read_text(encoding="utf-8").splitlines()
        pair = json.loads(lines[len(lines) // 2])
        source = re.split(r"[:;] ", task["source"])[0]  # the source itself, not how pairs were picked from it
        licence = re.sub(r" \(licences/[^)]*\)", "", task["licence"])  # the names, not the files
        cells = [
            f"`{name}`",
            f"{len(lines):,}",
            f"{pair['x']} → {pair['y']}",
            f"`{task['template']}`",
            f"{source}; {licence}",
        ]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
