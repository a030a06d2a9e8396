"""The benchmark scripts run end to end on the tiny GPT-2 (their numbers only mean something on a real
model; see README "Speed"). This keeps them from rotting and checks what they report is well formed."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True, timeout=600
    )


@pytest.fixture()
def bench_data(tmp_path) -> str:
    from helpers import TINY_PAIRS

    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"x": x, "y": y}) + "\n" for x, y in TINY_PAIRS * 3))
    return str(path)


def test_speed_benchmark_trains_every_variant_and_reports_ratios(tiny_gpt2, bench_data, tmp_path):
    out = tmp_path / "speed.json"
    done = run(
        "speed.py",
        "--model",
        tiny_gpt2,
        "--data",
        bench_data,
        "--batch-size",
        "4",
        "--steps",
        "3",
        "--test-pairs",
        "12",
        "--device",
        "cpu",
        "--json",
        str(out),
        "--variants",
        "promptgrad,promptgrad-bf16,original-fp32,original-bf16,peft-fp32,peft-bf16",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    rows = {r["variant"]: r for r in report["results"]}
    assert list(rows) == ["promptgrad", "promptgrad-bf16", "original-fp32", "original-bf16", "peft-fp32", "peft-bf16"]
    for r in rows.values():
        assert 0 < r["examples"] <= 12 and r["examples_per_s"] > 0 and math.isfinite(r["test_loss"])
        assert 0 < r["fraction_of_peak"] and r["flops_per_example"] > 0
    # the same model work in any dtype; the original loop computes logits at every position, promptgrad only at targets
    assert rows["original-fp32"]["flops_per_example"] == rows["original-bf16"]["flops_per_example"]
    assert rows["promptgrad"]["flops_per_example"] < rows["original-fp32"]["flops_per_example"]
    # training moved every prompt: none scores exactly the untrained loss
    assert all(r["test_loss"] != report["untrained"]["test_loss"] for r in rows.values())
    assert "promptgrad x" in done.stdout and "peft-bf16" in done.stdout


def test_speed_benchmark_rejects_an_unknown_variant():
    done = run("speed.py", "--variants", "promptgrad,fast")
    assert done.returncode == 2 and "unknown variant(s) fast" in done.stderr


def test_time_to_quality_reports_each_recipe(tiny_gpt2, bench_data, tmp_path):
    out = tmp_path / "ttq.json"
    # the tiny random model never gets 40% below anything: every recipe runs out of steps or budget
    done = run(
        "time_to_quality.py",
        "--model",
        tiny_gpt2,
        "--data",
        bench_data,
        "--test-pairs",
        "12",
        "--eval-every",
        "50",
        "--budget-factor",
        "0.5",
        "--device",
        "cpu",
        "--json",
        str(out),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    recipes = [r["recipe"] for r in report["results"]]
    import torch

    from promptgrad.model.precision import choose_precision

    auto = choose_precision("auto", torch.device("cpu"), 64).precision  # the tiny model's width; depends on this CPU
    assert recipes == [f"promptgrad ({auto})", "original-bf16", "original-fp32"]
    ours = report["results"][0]
    assert ours["steps"] == 100 and not ours["reached"]  # promptgrad's default job length
    for baseline in report["results"][1:]:
        assert baseline["train_seconds"] >= 0.5 * ours["train_seconds"] and not baseline["reached"]


def test_profile_step_lists_the_costliest_operators_of_both_loops(tiny_gpt2, bench_data):
    done = run(
        "profile_step.py",
        "--model",
        tiny_gpt2,
        "--data",
        bench_data,
        "--batch-size",
        "4",
        "--steps",
        "2",
        "--rows",
        "5",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "promptgrad: 2 steps of 4 pairs" in done.stdout and "original-fp32: 2 steps of 4 pairs" in done.stdout
    assert done.stdout.count("aten::mm") >= 2  # matrix products lead both tables


def test_tui_latency_measures_the_first_point_and_key_latency_at_the_terminal(tiny_gpt2, bench_data, tmp_path):
    out = tmp_path / "latency.json"
    done = run(
        "tui_latency.py",
        "--model",
        tiny_gpt2,
        "--data",
        bench_data,
        "--presses",
        "4",
        "--steps",
        "100000",
        "--json",
        str(out),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(out.read_text())
    # (no order between the two: the chart is redrawn once a second, the status line more often)
    assert 0 < figures["first_evaluation_s"] < 120 and 0 < figures["first_step_s"] < 120
    keys = figures["key_latency_ms"]
    assert keys["n"] == 4 and 0 < keys["median"] <= keys["p95"] <= keys["max"] < 30_000
    assert figures["examples_per_s_during"] > 0
    load = figures["load_average_1_5_15_min"]  # said beside the figures: the machine may be shared
    assert len(load["before"]) == len(load["after"]) == 3 and "load average (1, 5, 15 min)" in done.stdout


def test_tui_throughput_reads_both_runs_speeds_with_the_probe_asked(tiny_gpt2, bench_data):
    done = run(
        "tui_throughput.py", "--model", tiny_gpt2, "--data", bench_data, "--steps", "300", "--rounds", "1", "--probe"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    line = done.stdout.strip().splitlines()[-1]
    cli, tui, ratio = (float(v) for v in re.findall(r"([0-9.]+)(?: examples/s|$)", line.replace("TUI/CLI ", "")))
    assert cli > 0 and tui > 0 and ratio == pytest.approx(tui / cli, abs=0.01), line
