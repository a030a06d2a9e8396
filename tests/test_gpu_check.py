"""The prepared GPU check runs end to end on the CPU at a tiny shape (what CI can prove), its checks hold
here, and the host-device sync count it relies on really counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from device_checks import counting_syncs, host_syncs_per_step, run_all  # noqa: E402
from shapes import SHAPES, shape_model  # noqa: E402


@pytest.fixture(scope="module")
def tiny_fp32():
    return shape_model("shape:tiny", torch.device("cpu"), torch.float32)


def test_every_device_check_holds_on_the_cpu(tiny_fp32, tmp_path):
    results = run_all(tiny_fp32, tmp_path)
    failed = {name: result for name, result in results.items() if not result.get("ok")}
    assert not failed, failed
    assert results["resume_is_exact"]["bit_for_bit"]  # CPU, fp32: exactly


def test_a_training_step_syncs_once_when_it_reports_and_never_otherwise(tiny_fp32):
    result = host_syncs_per_step(tiny_fp32)
    assert result["reporting_step"] == 1 and result["silent_step"] == 0, result


def test_the_sync_count_counts():
    x = torch.ones(3)
    with counting_syncs(torch.device("cpu"), set()) as counted:
        x.sum().item(), bool(x.any()), x.tolist(), torch.nonzero(x)
    assert counted[0] == 4
    with counting_syncs(torch.device("cpu"), {id(x)}) as counted:
        x.sum().item()  # the sum is a new tensor: not one the host keeps
        x[0].item()
    assert counted[0] == 2


def test_shapes_are_the_published_ones():
    assert {"gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "smollm2-135m"} <= set(SHAPES)
    small = shape_model("shape:gpt2", torch.device("meta"))  # no memory: only the shapes
    assert sum(p.numel() for p in small.model.parameters()) == 124_439_808  # GPT-2's 124M, tied head counted once


def test_the_gpu_check_runs_end_to_end_at_a_tiny_shape(tmp_path):
    out = tmp_path / "check"
    env = {**os.environ, "OUT": str(out), "PROMPTGRAD_FORCE_SHIM": "1", "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--tiny"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert {p.name for p in out.iterdir()} >= {
        "device.json",
        "checks.json",
        "peaks.json",
        "speed.json",
        "speed.txt",
        "epoch.json",
        "summary.md",
        "log.txt",
    }
    checks = json.loads((out / "checks.json").read_text())
    assert all(result["ok"] for result in checks.values())
    speed = json.loads((out / "speed.json").read_text())
    assert [r["variant"] for r in speed["results"]][:2] == ["promptgrad", "original-fp32"]
    epoch = json.loads((out / "epoch.json").read_text())
    assert epoch["promptgrad"]["seconds_per_epoch"] > 0 and epoch["steps_per_epoch"] > 0
    assert "Speed at the shape:tiny shape" in (out / "summary.md").read_text()
