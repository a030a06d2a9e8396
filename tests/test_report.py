"""`promptgrad report`: one table across tasks and settings, whose numbers are those of the runs' own
metrics.jsonl (recomputed here without results.py), plots that are real SVG naming what they show, and
run folders that are unfinished, planted or damaged listed and left out, never followed or waited on."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import statistics
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers import TINY_PAIRS

from promptgrad.cli.main import main
from promptgrad.config import TrainConfig
from promptgrad.experiments.results import collect
from promptgrad.readout.explain import PromptReading
from promptgrad.train.loop import train

TASKS = {"opposites": TINY_PAIRS, "echoes": [(x, x) for x, _ in TINY_PAIRS]}  # two data files, two "tasks"
SEEDS = {"opposites": (0, 1), "echoes": (0,)}  # a group of two seeds, and one of a single seed


@pytest.fixture(scope="module")
def sweep(tiny_gpt2, tmp_path_factory) -> Path:
    """runs_dir/grid/<run>: 3 real tiny runs (a few steps each) of 2 tasks, plus one run cut off before
    its end (as a kill -9 leaves it)."""
    root = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as patch:
        # the model's own reading of the prompt takes seconds a readout on 2 cores, and no report reads it
        patch.setattr(
            "promptgrad.train.loop.read_prompt", lambda frozen, vectors: PromptReading([""] * len(vectors), "")
        )
        for task, pairs in TASKS.items():
            data = root / f"{task}.jsonl"
            data.write_text("".join(json.dumps({"x": x, "y": y}) + "\n" for x, y in pairs))
            for seed in SEEDS[task]:  # eval_size 0: the baselines scored once, on all test pairs, at the first look
                config = TrainConfig(
                    task="antonyms",
                    model=tiny_gpt2,
                    data=str(data),
                    steps=4,
                    batch_size=4,
                    eval_every=2,
                    eval_size=0,
                    checkpoint_every=0,
                    num_predictions=0,
                    nearest_k=0,
                    lr=1e-2,
                    precision="fp32",
                    device="cpu",
                    seed=seed,
                    name=f"{task}-seed{seed}",
                    runs_dir=str(root / "runs" / "grid"),
                )
                for _ in train(config):
                    pass
    cut = root / "runs" / "grid" / "opposites-cut"
    shutil.copytree(root / "runs" / "grid" / "opposites-seed0", cut)
    lines = (cut / "metrics.jsonl").read_text().splitlines(keepends=True)
    (cut / "metrics.jsonl").write_text("".join(lines[: len(lines) // 2]))
    return root / "runs"


def final_scores(run: Path) -> dict[tuple[str, str], dict]:
    """Each prompt's evaluation on the run's whole test set, read plainly from metrics.jsonl: the learned
    prompt's at the last step, the others' latest; majority keyed without its answer (which may differ by seed)."""
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    n_test = [e for e in events if e["event"] == "started"][-1]["n_test"]
    last = [e for e in events if e["event"] == "finished"][-1]["step"]
    scores = {}
    for e in events:
        if e["event"] == "evaluation" and e["n_pairs"] == n_test and (e["prompt"] != "learned" or e["step"] == last):
            scores[(e["prompt"], "" if e["prompt"] == "majority" else e["text"])] = e
    return scores


def t_interval(
    values: list[float], low: float = -math.inf, high: float = math.inf
) -> tuple[float | None, float | None]:
    """By hand, for the one or two seeds these tests use: mean ± 12.7062 * sd / sqrt(2) (Student t, 1 df),
    cut to [low, high] (an accuracy's mean cannot leave [0, 1])."""
    if len(values) < 2:
        return None, None
    assert len(values) == 2
    half = 12.706204736174 * statistics.stdev(values) / 2**0.5
    return max(low, statistics.fmean(values) - half), min(high, statistics.fmean(values) + half)


def expected_rows(runs_dir: Path) -> dict[tuple[str, str, str], dict]:
    """(task, prompt, text) -> mean and sd of loss and accuracy over the seeds, computed from the files."""
    out = {}
    for task in TASKS:
        per_run = [final_scores(runs_dir / "grid" / f"{task}-seed{seed}") for seed in SEEDS[task]]
        for key in per_run[0]:
            losses = [s[key]["test_loss"] for s in per_run]
            accuracies = [s[key]["accuracy"] for s in per_run]
            intervals = [(s[key]["loss_low"], s[key]["loss_high"]) for s in per_run]
            out[(task, *key)] = {
                "loss_mean": None if None in losses else statistics.fmean(losses),
                "loss_sd": None if None in losses or len(losses) < 2 else statistics.stdev(losses),
                "accuracy_mean": statistics.fmean(accuracies),
                "accuracy_sd": statistics.stdev(accuracies) if len(accuracies) > 1 else None,
                # one seed: its own interval; several: the mean half-width of theirs
                "loss_low": intervals[0][0] if len(intervals) == 1 else None,
                "loss_high": intervals[0][1] if len(intervals) == 1 else None,
                "loss_half_width": None if None in losses else statistics.fmean((hi - lo) / 2 for lo, hi in intervals),
                # several seeds: the t interval of the mean (t(0.975, 1) = 12.7062 for two seeds)
                "loss_mean_low": None if None in losses else t_interval(losses, 0)[0],
                "loss_mean_high": None if None in losses else t_interval(losses, 0)[1],
                "accuracy_mean_low": t_interval(accuracies, 0, 1)[0],
                "accuracy_mean_high": t_interval(accuracies, 0, 1)[1],
            }
    return out


@pytest.fixture(scope="module")
def report(sweep, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("out") / "report"
    assert main(["report", str(sweep), "--out", str(out)]) == 0
    return out


def test_the_numbers_are_the_runs_own_means_and_spreads_over_seeds(sweep, report):
    expected = expected_rows(sweep)
    document = json.loads((report / "report.json").read_text())
    rows = {(r["task"], r["prompt"], r["text"]): r for r in document["rows"]}
    assert set(rows) == set(expected) and len(expected) >= 2 * 4  # learned, 2 hand-written, untrained at least
    assert expected[("opposites", "learned", "")]["loss_half_width"] > 0  # the runs record their intervals
    for key, want in expected.items():
        for name, value in want.items():
            assert rows[key][name] == (None if value is None else pytest.approx(value, rel=1e-12)), (key, name)
        assert rows[key]["seeds"] == " ".join(map(str, SEEDS[key[0]])) and rows[key]["n_seeds"] == len(SEEDS[key[0]])
        n_test = {
            json.loads(line)["n_test"]
            for seed in SEEDS[key[0]]
            for line in (sweep / "grid" / f"{key[0]}-seed{seed}" / "metrics.jsonl").read_text().splitlines()[:1]
        }
        assert (
            rows[key]["n_test"] == " ".join(map(str, sorted(n_test)))
            and rows[key]["template"]
            == TrainConfig.load(sweep / "grid" / f"{key[0]}-seed0" / "config.toml").problem.template
        )
    with open(report / "report.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(expected)
    for row in table:
        want = expected[(row["task"], row["prompt"], row["text"])]
        for name, value in want.items():
            assert (row[name] == "") if value is None else float(row[name]) == pytest.approx(value, rel=1e-12)
    for task in TASKS:  # learned vs the best other prompt of its group
        learned = expected[(task, "learned", "")]
        others = [v for k, v in expected.items() if k[0] == task and k[1] != "learned" and v["loss_mean"] is not None]
        row = rows[(task, "learned", "")]
        assert row["delta_loss_vs_best_baseline"] == pytest.approx(
            learned["loss_mean"] - min(v["loss_mean"] for v in others)
        )
    assert {run["name"] for run in document["runs"]} == {f"{t}-seed{s}" for t in TASKS for s in SEEDS[t]}
    assert all(Path(run["path"]).is_dir() and run["scores"] for run in document["runs"])


def test_the_markdown_has_one_row_per_group_and_prompt_and_says_what_each_number_is(sweep, report):
    text = (report / "report.md").read_text()
    main_table = text.split("\n## ")[0]  # the paired comparisons' table, where runs have per-pair results, follows
    table = [line for line in main_table.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    header, body = table[0], table[1:]
    assert "test loss" in header and "accuracy 95% CI" in header and "Δ loss vs best baseline" in header
    assert len(body) == len(expected_rows(sweep))
    assert sum(line.startswith("| opposites | learned |") for line in body) == 1
    assert "standard deviation" in text and "bootstrap" in text and "half-width" in text


def test_the_plots_are_svg_files_that_name_the_tasks_and_series(report):
    for task in TASKS:
        for kind, labels in (
            ("compare", ["learned", "hand-written ' antonyms'", "untrained"]),
            ("loss", [f"training loss, seed(s) {', '.join(map(str, SEEDS[task]))}", "learned prompt's test loss"]),
        ):
            path = report / "plots" / f"{kind}-{task}.svg"
            assert path.stat().st_size > 5000
            texts = " ".join(t.text or "" for t in ET.parse(path).getroot().iter("{http://www.w3.org/2000/svg}text"))
            assert task in texts, (path, texts[:200])
            for label in labels:
                assert label in texts, (path, label)
            if kind == "compare":  # each group's test pairs per run
                assert f"{len(SEEDS[task])} seed(s), " in texts and " test pairs each" in texts


def test_an_unfinished_run_is_listed_and_left_out(report):
    document = json.loads((report / "report.json").read_text())
    assert [Path(x["path"]).name for x in document["left_out"]] == ["opposites-cut"]
    assert "unfinished" in document["left_out"][0]["why"]
    assert "opposites-cut" not in {run["name"] for run in document["runs"]}
    assert "`" + document["left_out"][0]["path"] + "`: unfinished" in (report / "report.md").read_text()


def test_nothing_finished_is_one_line_and_exit_2(sweep, tmp_path, capsys):
    shutil.copytree(sweep / "grid" / "opposites-cut", tmp_path / "only" / "cut")
    assert main(["report", str(tmp_path / "only"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("promptgrad: error: nothing to report") and "unfinished" in err[0]
    assert not (tmp_path / "out").exists()


def test_planted_links_and_fifos_are_neither_followed_nor_waited_on(sweep, tmp_path):
    folder = tmp_path / "sweep"
    shutil.copytree(sweep / "grid" / "echoes-seed0", folder / "real")
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(sweep / "grid" / "opposites-seed1", elsewhere / "run")
    (folder / "linked").symlink_to(elsewhere)  # a link to a folder of runs: not walked into
    os.mkfifo(folder / "pipe")  # a FIFO among the runs: never opened
    for name, plant in (
        ("fifo-metrics", os.mkfifo),
        ("link-metrics", lambda p: p.symlink_to(elsewhere / "run" / "metrics.jsonl")),
    ):
        shutil.copytree(sweep / "grid" / "echoes-seed0", folder / name)
        (folder / name / "metrics.jsonl").unlink()
        plant(folder / name / "metrics.jsonl")
    found = []
    worker = threading.Thread(target=lambda: found.append(collect([folder])), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "the report hung on a FIFO"
    results = found[0]
    assert [run.name for run in results.runs] == ["real"]
    why = {x.path.name: x.why for x in results.left_out}
    assert set(why) == {"linked", "fifo-metrics", "link-metrics"}
    assert "symbolic link" in why["linked"] and "FIFO" in why["fifo-metrics"] and "symbolic link" in why["link-metrics"]


# ---- records as the newer promptgrad writes them: majority and k-shot baselines, intervals ----------------


def write_run(folder: Path, seed: int, evaluations: list[dict], data: str = "/data/capitals.jsonl") -> None:
    """A finished run folder written by hand: its config, and a metrics.jsonl with these final evaluations."""
    folder.mkdir(parents=True)
    TrainConfig(model="gpt2", data=data, template="{x} {prompt} {y}", baseline_text=[" capital:"], seed=seed).save(
        folder / "config.toml"
    )
    lines = [
        {
            "event": "started",
            "run_dir": str(folder),
            "model": "gpt2",
            "device": "cpu",
            "precision": "fp32",
            "n_train": 80,
            "n_test": 20,
            "total_steps": 100,
            "start_step": 0,
            "steps_per_epoch": 3,
        },
        {
            "event": "step",
            "step": 100,
            "epoch": 33.3,
            "loss": 1.5,
            "lr": 0.0,
            "examples_per_s": 10.0,
            "elapsed_s": 9.0,
            "eta_s": 0.0,
        },
        *(
            {"event": "evaluation", "step": 100, "n_pairs": 20, "best_test_loss": 1.0, "text": "", **e}
            for e in evaluations
        ),
        {"event": "finished", "step": 100, "stopped": False, "test_loss": 1.0, "accuracy": 0.5, "prompt_path": ""},
    ]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def interval(prompt: str, loss: float | None, accuracy: float, spread: float, **extra) -> dict:
    return {
        "prompt": prompt,
        "test_loss": loss,
        "accuracy": accuracy,
        **extra,
        "loss_low": None if loss is None else loss - spread,
        "loss_high": None if loss is None else loss + spread,
        "accuracy_low": accuracy - spread / 10,
        "accuracy_high": accuracy + spread / 10,
    }


def test_majority_k_shot_and_intervals_are_read_and_shown(tmp_path):
    runs = tmp_path / "runs"
    for seed, answer, (learned, spread) in ((0, "Paris", (1.0, 0.2)), (1, "Rome", (1.4, 0.4))):
        write_run(
            runs / "new" / f"seed{seed}",
            seed,
            [
                interval("learned", learned, 0.5, spread),
                interval("hand-written", 3.0, 0.1, spread, text=" capital:"),
                interval("k-shot", 2.0, 0.3, spread, text="3-shot"),
                interval("majority", None, 0.6, spread, text=answer),  # no LM loss; its answer differs by seed
            ],
        )
    write_run(
        runs / "old" / "seed0",
        0,
        [
            {"prompt": "learned", "test_loss": 2.0, "accuracy": 0.25},  # before intervals
            {"prompt": "hand-written", "test_loss": 3.0, "accuracy": 0.05, "text": " capital:"},
        ],
        data="/data/old-capitals.jsonl",
    )
    results = collect([runs])
    assert not results.left_out and len(results.groups) == 2
    new = next(g for g in results.groups if g.task == "capitals")
    rows = {r.label: r for r in new.rows}
    assert list(rows) == [
        "learned",
        "hand-written ' capital:'",
        "3-shot",
        "majority",
    ]  # one majority row for both seeds
    assert rows["majority"].loss is None and rows["majority"].accuracy.mean == pytest.approx(0.6)
    assert rows["learned"].loss.mean == pytest.approx(1.2) and rows["learned"].loss.sd == pytest.approx(
        statistics.stdev([1.0, 1.4])
    )
    assert (
        rows["learned"].loss.half_width == pytest.approx(0.3) and rows["learned"].loss.low is None
    )  # mean of 0.2 and 0.4
    assert new.delta.loss == pytest.approx(1.2 - 2.0) and new.delta.loss_baseline == "3-shot"
    assert new.delta.accuracy == pytest.approx(0.5 - 0.6) and new.delta.accuracy_baseline == "majority"
    old = next(g for g in results.groups if g.task == "old-capitals")
    assert old.rows[0].loss.half_width is None and old.rows[0].loss.sd is None  # one seed, no interval recorded
    header, cells = results.table()
    by_prompt = {(c[0], c[1]): dict(zip(header, c)) for c in cells}
    assert by_prompt[("capitals", "majority")]["test loss"] == "–"
    # two seeds: the t interval of the mean, 1.2 ± t(0.975, 1) * sd / sqrt(2), t = 12.7062 (printed tables)
    half = 12.7062047362 * statistics.stdev([1.0, 1.4]) / 2**0.5
    assert 1.2 - half < 0 and rows["learned"].loss.mean_low == 0.0  # a loss is never negative: the interval is cut at 0
    assert rows["learned"].loss.mean_high == pytest.approx(1.2 + half)
    assert by_prompt[("capitals", "learned")]["loss 95% CI of mean"] == f"[0.000, {1.2 + half:.3f}]"
    assert (
        by_prompt[("capitals", "3-shot")]["accuracy 95% CI of mean"] == "[30.0%, 30.0%]"
    )  # the seeds agree: no spread
    assert by_prompt[("old-capitals", "learned")]["loss 95% CI of mean"] == "–"
    assert by_prompt[("capitals", "learned")]["Δ loss vs best baseline"] == "-0.800 vs 3-shot"
    single = collect([runs / "new" / "seed0"]).table()[1][0]  # one seed: its own bootstrap interval
    assert single[header.index("loss 95% CI of mean")] == "[0.800, 1.200]"
    assert single[header.index("accuracy 95% CI of mean")] == "[48.0%, 52.0%]"
    rows_csv = list(csv.DictReader(results.csv().splitlines()))
    majority = next(r for r in rows_csv if r["prompt"] == "majority")
    assert majority["loss_mean"] == "" and float(majority["accuracy_mean"]) == pytest.approx(0.6)
    document = json.loads(results.json())
    answers = {s["text"] for run in document["runs"] for s in run["scores"] if s["prompt"] == "majority"}
    assert answers == {"Paris", "Rome"}  # each run's own answer is kept in the JSON


def test_groups_split_by_a_setting_and_the_table_shows_which(tmp_path):
    runs = tmp_path / "runs"
    for lr in ("0.01", "0.1"):
        folder = runs / f"lr{lr}"
        write_run(folder, 0, [{"prompt": "learned", "test_loss": float(lr), "accuracy": 0.5}])
        config = TrainConfig.load(folder / "config.toml").replace(lr=float(lr))
        config.save(folder / "config.toml")
    results = collect([runs])
    assert results.varying == ["lr"] and len(results.groups) == 2
    header, cells = results.table()
    assert header[:3] == ["task", "lr", "prompt"] and sorted(c[1] for c in cells) == ["0.01", "0.1"]


def test_the_run_browser_shows_the_report_of_the_marked_runs(tmp_path):
    import asyncio

    from textual.app import App
    from textual.widgets import DataTable

    from promptgrad_tui.browser import RunBrowser
    from promptgrad_tui.report_table import ReportScreen

    runs = tmp_path / "runs"
    for seed in (0, 1):
        write_run(
            runs / f"seed{seed}",
            seed,
            [interval("learned", 1.0 + seed, 0.5, 0.1), interval("hand-written", 3.0, 0.1, 0.1, text=" capital:")],
        )
    write_run(runs / "unmarked", 2, [interval("learned", 9.0, 0.5, 0.1)])

    class Browse(App):
        def on_mount(self) -> None:
            self.push_screen(RunBrowser(str(runs), "Runs", marked=(str(runs / "seed0"), str(runs / "seed1"))))

    async def drive() -> None:
        app = Browse()
        async with app.run_test(size=(160, 40)) as pilot:
            await pilot.pause()
            await pilot.press("f5")
            for _ in range(100):
                await pilot.pause(0.05)
                if isinstance(app.screen, ReportScreen):
                    break
            assert isinstance(app.screen, ReportScreen)
            table = app.screen.query_one(DataTable)
            assert table.row_count == 2  # one group (the two marked seeds) x two prompts; the unmarked run is not in it
            assert "1.500 ± 0.707" in [str(c) for c in table.get_row_at(0)]

    asyncio.run(drive())


def test_failed_and_stopped_runs_are_left_out_with_why(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs / "good", 0, [interval("learned", 1.0, 0.5, 0.1)])
    for name, end in (
        ("failed", {"event": "failed", "step": 3, "message": "out of memory\nmore", "user_error": False}),
        (
            "stopped",
            {"event": "finished", "step": 3, "stopped": True, "test_loss": None, "accuracy": None, "prompt_path": ""},
        ),
    ):
        write_run(runs / name, 0, [])
        lines = (runs / name / "metrics.jsonl").read_text().splitlines()
        (runs / name / "metrics.jsonl").write_text("\n".join([*lines[:-1], json.dumps(end)]) + "\n")
    results = collect([runs])
    assert [r.name for r in results.runs] == ["good"]
    why = {x.path.name: x.why for x in results.left_out}
    assert why == {"failed": "failed at step 100 of 100: out of memory", "stopped": "stopped at step 3 of 100"}


def test_the_results_table_across_tasks_is_the_committed_reports_summary():
    """docs/results.md's table across the bundled tasks is what benchmarks/report_summary.py makes of the report
    committed under benchmarks/results/bundled-tasks (so neither can drift from the other), and that report
    holds every bundled task with three seeds, each with the learned prompt and every baseline."""
    import importlib.util

    from promptgrad.problem.tasks import bundled_tasks

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("report_summary", root / "benchmarks" / "report_summary.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = json.loads((root / "benchmarks" / "results" / "bundled-tasks" / "report.json").read_text())
    table = module.summary(report)
    assert table in (root / "docs" / "results.md").read_text()
    learned = {row["task"]: row["n_seeds"] for row in report["rows"] if row["prompt"] == "learned"}
    assert learned == {name: 3 for name in bundled_tasks()}
    for task in learned:
        prompts = {row["prompt"] for row in report["rows"] if row["task"] == task}
        assert {"learned", "hand-written", "k-shot", "untrained", "majority"} <= prompts, (task, prompts)


# ---- per-pair results: paired comparisons over seeds, what each group is, the start prompt named -----------


def write_pair_scores(folder: Path, prompts: dict[tuple[str, str], list[tuple[bool, float | None, int]]]) -> None:
    """pair_scores.jsonl as the scorer writes it: one line per test pair and prompt."""
    lines = [
        {
            "prompt": prompt,
            "text": text,
            "x": f"x{i}",
            "y": f"y{i}",
            "answer": "a",
            "right": right,
            "loss": loss,
            "tokens": tokens,
        }
        for (prompt, text), results in prompts.items()
        for i, (right, loss, tokens) in enumerate(results)
    ]
    (folder / "pair_scores.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_paired_comparisons_from_pair_scores_match_a_hand_computation_over_seeds(tmp_path):
    from promptgrad.readout.paired import compare, read_pair_scores

    runs = tmp_path / "runs"
    # 20 test pairs per run. seed 0: learned right on the first 12, hand-written on the first 6 and pairs 12-13:
    # learned only 6, hand-written only 2 -> McNemar p = 2 * (1 + 8 + 28) / 2**8. seed 1: learned right on 10,
    # hand-written on the first 9 and pair 10: learned only 1, hand-written only 1 -> p = 1.
    rights = {0: (range(12), [*range(6), 12, 13]), 1: (range(10), [*range(9), 10])}
    for seed, (learned, hand) in rights.items():
        folder = runs / f"seed{seed}"
        write_run(
            folder,
            seed,
            [
                interval("learned", 1.0, len(learned) / 20, 0.1),
                interval("hand-written", 2.0, len(hand) / 20, 0.1, text=" capital:"),
                interval("untrained", 3.0, 0.0, 0.1),
            ],
        )  # as written before the start was named
        write_pair_scores(
            folder,
            {
                ("learned", ""): [(i in learned, 0.5 + 0.1 * seed, 1) for i in range(20)],
                ("hand-written", " capital:"): [(i in hand, 1.0 + 0.1 * (i % 2), 1) for i in range(20)],
                ("untrained", "untrained (random)"): [(False, 3.0, 1) for _ in range(20)],
            },
        )
    results = collect([runs])
    group = results.groups[0]
    assert [r.label for r in group.rows] == [
        "learned",
        "hand-written ' capital:'",
        "untrained (random)",
    ]  # old text: from the init
    paired = {c.label: c for c in group.paired}
    assert set(paired) == {"hand-written ' capital:'", "untrained (random)"}
    hand = paired["hand-written ' capital:'"]
    differences = [12 / 20 - 8 / 20, 10 / 20 - 10 / 20]
    assert hand.seeds == [0, 1] and hand.n_pairs == [20, 20]
    assert hand.accuracy.mean == pytest.approx(statistics.fmean(differences))
    low, high = t_interval(differences, -1, 1)
    assert (hand.accuracy.low, hand.accuracy.high) == (pytest.approx(low), pytest.approx(high))
    assert (hand.accuracy.low, hand.accuracy.high) == (-1, 1)  # +10 points ± 12.7 * 0.141 / √2: cut to ±100 points
    assert hand.mcnemar_p == [pytest.approx(2 * (1 + 8 + 28) / 2**8), 1.0]
    assert (hand.learned_only_right, hand.baseline_only_right) == (7, 3)
    # test loss: learned 0.5 and 0.6 per token; hand-written 1.05 per token in both runs
    assert hand.loss.mean == pytest.approx(statistics.fmean([0.5 - 1.05, 0.6 - 1.05]))
    # one seed: the run's own paired bootstrap interval
    single = collect([runs / "seed0"]).groups[0].paired[0]
    scores = read_pair_scores(runs / "seed0" / "pair_scores.jsonl")
    own = compare(scores[("learned", "")], scores[("hand-written", " capital:")], "")
    assert (single.accuracy.low, single.accuracy.high) == (own.accuracy_interval.low, own.accuracy_interval.high)
    assert single.accuracy.mean == pytest.approx(0.2) and single.accuracy.sd is None
    text = results.markdown()
    assert "## Paired comparisons" in text and "| capitals | hand-written ' capital:' | 2 (0, 1) | +10.0 [" in text
    assert "model gpt2, template '{x} {prompt} {y}', 20 test pairs per run, seeds 0, 1" in text
    rows = {r["prompt"]: r for r in csv.DictReader(results.csv().splitlines())}
    assert float(rows["hand-written"]["learned_minus_accuracy_mean"]) == pytest.approx(0.1)
    assert rows["hand-written"]["mcnemar_p"] == f"{2 * 37 / 256:.6g} 1" and rows["learned"]["mcnemar_p"] == ""


def test_a_run_without_or_with_damaged_pair_scores_is_said_and_still_reported(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs / "old", 0, [interval("learned", 1.0, 0.5, 0.1)])
    write_run(runs / "damaged", 1, [interval("learned", 1.2, 0.5, 0.1)])
    (runs / "damaged" / "pair_scores.jsonl").write_text('{"prompt": "learned"}\n')
    results = collect([runs])
    assert len(results.runs) == 2 and not results.groups[0].paired
    why = {r.name: r.paired_problem for r in results.runs}
    assert "no pair_scores.jsonl" in why["old"] and "line 1 is not a per-pair result" in why["damaged"]
    assert "seed 1 (damaged): no paired comparison:" in results.markdown()
