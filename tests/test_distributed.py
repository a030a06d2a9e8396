"""Data parallelism: 2 processes on gloo learn the same prompt as 1 process with the same global batch,
including the short last batch of an epoch that leaves one process no rows at all."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from promptgrad.model.models import load_model
from promptgrad.model.soft_prompt import SoftPrompt
from promptgrad.store.run_folder import RunFolder


def test_two_processes_learn_the_same_prompt_as_one(tiny_gpt2, tiny_data, tmp_path):
    common = [
        "train",
        "--task",
        "antonyms",
        "--model",
        tiny_gpt2,
        "--data",
        tiny_data,
        "--steps",
        "5",
        "--batch-size",
        "17",
        "--eval-every",
        "2",
        "--eval-size",
        "4",
        "--checkpoint-every",
        "0",
        "--precision",
        "fp32",
        "--device",
        "cpu",
        "--lr",
        "0.05",
        "--name",
        "run",
    ]
    single = subprocess.run(
        [sys.executable, "-m", "promptgrad", *common, "--runs-dir", str(tmp_path / "single")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr[-2000:]
    launched = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--master-port",
            "29533",
            "-m",
            "promptgrad",
            *common,
            "--runs-dir",
            str(tmp_path / "parallel"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]

    one, _ = RunFolder.open(tmp_path / "single" / "run").load_prompt()
    two, _ = RunFolder.open(tmp_path / "parallel" / "run").load_prompt()
    frozen = load_model(tiny_gpt2, torch.device("cpu"), torch.float32)
    start = SoftPrompt.initial(
        "random", 4, frozen.embedding.weight, frozen.tokenizer, torch.Generator().manual_seed(0)
    ).vectors
    assert not torch.allclose(one, start)  # it learned something, so equality below means something
    torch.testing.assert_close(two, one, rtol=1e-4, atol=1e-5)
    # only rank 0 wrote: exactly one run folder, and its metrics match the single run's evaluations
    assert [p.name for p in (tmp_path / "parallel").iterdir()] == ["run"]
    # the intervals too: the per-pair values gathered back in one process's order resample alike
    rounded = lambda *values: tuple(None if v is None else round(v, 4) for v in values)
    evals = lambda folder: [
        (e.step, e.prompt, e.n_pairs, rounded(e.test_loss, e.loss_low, e.loss_high, e.accuracy_low, e.accuracy_high))
        for e in RunFolder.open(folder).events()
        if e.kind == "evaluation"
    ]
    assert evals(tmp_path / "parallel" / "run") == evals(tmp_path / "single" / "run")
    # each pair's answer and mark too: gathered as token ids, decoded alike, in the pairs' order
    pair_scores = lambda folder: [
        {k: row[k] for k in ("prompt", "text", "x", "answer", "right", "tokens")}
        for row in map(json.loads, (folder / "pair_scores.jsonl").read_text().splitlines())
    ]
    assert pair_scores(tmp_path / "parallel" / "run") == pair_scores(tmp_path / "single" / "run")
    assert launched.stdout.count("finished at step 5") == 1  # one report, from rank 0


def test_a_peer_that_dies_is_one_line_and_exit_1_not_a_bug(tiny_gpt2, tiny_data, tmp_path):
    """Rank 1 ends abruptly (as a killed process would) before its third step; rank 0 cannot go on and
    says so in one line with exit status 1, not as a bug to report."""
    port = 29534
    command = [
        sys.executable,
        str(Path(__file__).with_name("slow_entry.py")),
        "cli",
        "train",
        "--task",
        "antonyms",
        "--model",
        tiny_gpt2,
        "--data",
        tiny_data,
        "--steps",
        "6",
        "--batch-size",
        "8",
        "--eval-every",
        "0",
        "--eval-size",
        "4",
        "--num-predictions",
        "0",
        "--checkpoint-every",
        "2",
        "--precision",
        "fp32",
        "--device",
        "cpu",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--name",
        "run",
    ]
    ranks = []
    for rank in (0, 1):
        env = {
            **os.environ,
            "WORLD_SIZE": "2",
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "DIE_AT_STEP": "3",
            "DIE_RANK": "1",
            "SLOW_STEP_SECONDS": "0",
        }
        ranks.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    (_, err0), _ = ranks[0].communicate(timeout=300), ranks[1].communicate(timeout=300)
    assert ranks[1].returncode == 3
    errors = [line for line in err0.splitlines() if line.strip()]
    assert ranks[0].returncode == 1, err0[-3000:]
    assert len(errors) == 1 and "another process of this run ended" in errors[0], errors
    assert "report it" not in errors[0] and "Traceback" not in err0
    assert "--resume" in errors[0] and (tmp_path / "runs" / "run" / "checkpoint.pt").exists()
