"""The compact table across tasks of docs/results.md, from the report.json that `promptgrad report` writes: per task
the learned prompt, the best hand-written one (by mean accuracy), k-shot and majority, each as accuracy
mean ± standard deviation over seeds (test loss in brackets), and one run's 95% interval half-width for
the learned prompt's accuracy (the test-pair noise of a single run).

    python benchmarks/report_summary.py benchmarks/results/bundled-tasks/report.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def cell(row: dict | None) -> str:
    if row is None:
        return "–"
    text = f"{100 * row['accuracy_mean']:.1f}% ± {100 * (row['accuracy_sd'] or 0):.1f}"
    return text if row["loss_mean"] is None else f"{text} ({row['loss_mean']:.2f})"


def summary(report: dict) -> str:
    by_task: dict[str, list[dict]] = {}
    for row in report["rows"]:
        by_task.setdefault(row["task"], []).append(row)
    n_test: dict[str, set[int]] = {}
    for run in report["runs"]:
        n_test.setdefault(run["task"], set()).add(run["n_test"])
    lines = [
        "| task (test pairs) | learned | one run's 95% CI | best hand-written | k-shot | majority | seeds |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for task, rows in by_task.items():

        def of(prompt: str) -> dict | None:
            return next((r for r in rows if r["prompt"] == prompt), None)

        hand = max((r for r in rows if r["prompt"] == "hand-written"), key=lambda r: r["accuracy_mean"], default=None)
        learned = of("learned")
        ci = (
            "–"
            if learned is None or learned["accuracy_half_width"] is None
            else f"± {100 * learned['accuracy_half_width']:.1f}"
        )
        pairs = "/".join(str(n) for n in sorted(n_test.get(task, ())))
        seeds = learned["n_seeds"] if learned else 0
        lines.append(
            f"| {task} ({pairs}) | {cell(learned)} | {ci} | {cell(hand)} | {cell(of('k-shot'))} | {cell(of('majority'))} | {seeds} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="a report.json written by promptgrad report")
    print(summary(json.loads(parser.parse_args().report.read_text())))


if __name__ == "__main__":
    main()
