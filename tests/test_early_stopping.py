"""Early stopping on a validation split carved from the training pairs (val_fraction, stop_patience): it
chooses without ever reading the test pairs, stops when the validation loss stops falling, keeps the best
prompt as the result, never trains on a validation pair, and a resumed run chooses as an uninterrupted one.

On the tiny random GPT-2 the validation loss rises from the first score on (antonyms it cannot learn),
so a short patience stops these runs within a few steps and the kept prompt is an early one."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from helpers import TINY_PAIRS, logged

from promptgrad.cli.main import main
from promptgrad.config import TrainConfig
from promptgrad.events import Finished, Started, Step, Validation
from promptgrad.model.models import load_model
from promptgrad.problem.pairs import Pair, Split, split_pairs
from promptgrad.store.run_facts import DataFacts, RunFacts
from promptgrad.store.run_folder import RunFolder
from promptgrad.train.loop import TrainingRun, train
from promptgrad.train.session import session_around

PAIRS = [Pair(x, y) for x, y in TINY_PAIRS]


@pytest.fixture(autouse=True)
def no_readouts(monkeypatch):
    """What the model reads in the prompt takes seconds a look and plays no part in choosing it: left out here."""
    monkeypatch.setattr(TrainingRun, "readout", lambda self: iter(()))


@pytest.fixture()
def es_config(tiny_config) -> TrainConfig:
    """Validation every 2 steps, patience 3: on the tiny model it stops at step 8 keeping step 2's prompt."""
    return tiny_config.replace(
        steps=30,
        eval_every=2,
        eval_size=4,
        checkpoint_every=0,
        num_predictions=0,
        nearest_k=0,
        lr=0.3,
        warmup_steps=0,
        val_fraction=0.25,
        stop_patience=3,
        baseline_text=[" antonyms"],
    )


def test_the_validation_split_comes_from_the_training_pairs_seeded_with_each_pair_beside_its_reverse(tmp_path):
    plain = split_pairs(PAIRS, 0.2, seed=0)
    split = split_pairs(PAIRS, 0.2, seed=0, val_fraction=0.25)
    assert split.test == plain.test  # the test pairs do not move
    assert sorted(split.train + split.validation, key=str) == sorted(plain.train, key=str) and not set(
        split.train
    ) & set(split.validation)
    assert split.train == [p for p in plain.train if p not in split.validation]  # the training order is kept
    assert len(split.validation) == 4  # round(0.25 * 18) = 4: two whole pair-and-reverse groups
    for p in split.validation:
        assert Pair(p.y, p.x) in split.validation
    assert split_pairs(PAIRS, 0.2, seed=0, val_fraction=0.25) == split  # seeded
    assert {s.validation[0] for s in (split_pairs(PAIRS, 0.2, seed=k, val_fraction=0.25) for k in range(6))} != {
        split.validation[0]
    }
    # recorded in split.jsonl in order, and read back; a file from before validation splits still loads
    folder = RunFolder(tmp_path)
    folder.save_split(split)
    assert folder.split() == split
    assert {json.loads(line)["side"] for line in (tmp_path / "split.jsonl").read_text().splitlines()} == {
        "train",
        "validation",
        "test",
    }
    (tmp_path / "split.jsonl").write_text(
        "".join(json.dumps({"x": p.x, "y": p.y, "side": "train"}) + "\n" for p in plain.train)
        + "".join(json.dumps({"x": p.x, "y": p.y, "side": "test"}) + "\n" for p in plain.test)
    )
    assert folder.split() == Split(plain.train, plain.test, [])


def run_in_memory(config: TrainConfig, frozen, split: Split) -> tuple[list, torch.Tensor]:
    """The training loop on a given split, no run folder (as api.py runs it): its events and its prompt."""
    facts = RunFacts("fp32", "test", "cpu", DataFacts.of("in memory", split.train + split.validation + split.test))
    run = TrainingRun(config, threading.Event(), None, session=session_around(config.resolved(), frozen, split, facts))
    events = logged(run.events())
    return events, run.learner.prompt().detach().clone()


def test_early_stopping_never_reads_the_test_pairs(es_config, tiny_gpt2):
    """Two runs whose training and validation pairs are the same and whose test pairs differ choose the
    same step and end with the same prompt, bit for bit; only their test scores differ."""
    frozen = load_model(tiny_gpt2, torch.device("cpu"), torch.float32)
    split = split_pairs(PAIRS, 0.2, seed=0, val_fraction=0.25)
    other_test = [
        Pair(x, y) for x, y in (("sun", "moon"), ("moon", "sun"), ("day", "night"), ("night", "day"), ("in", "out"))
    ]
    a_events, a_prompt = run_in_memory(es_config, frozen, split)
    b_events, b_prompt = run_in_memory(es_config, frozen, Split(split.train, other_test, split.validation))
    a_valid, b_valid = ([e for e in events if isinstance(e, Validation)] for events in (a_events, b_events))
    assert a_valid == b_valid and len(a_valid) >= 2
    a_end, b_end = a_events[-1], b_events[-1]
    assert isinstance(a_end, Finished) and isinstance(b_end, Finished)
    assert a_end.best_step == b_end.best_step == a_valid[-1].best_step and a_end.step == b_end.step
    assert torch.equal(a_prompt, b_prompt)
    assert a_end.test_loss != b_end.test_loss  # the test pairs differ, and they are what the result is scored on


def test_patience_stops_early_keeps_the_best_prompt_and_never_trains_on_validation_pairs(es_config, monkeypatch):
    trained_on = []
    collate = TrainingRun.collate

    def spy(encoder, pairs, rows, group, device):
        trained_on.extend(pairs[i] for i in rows)
        return collate(encoder, pairs, rows, group, device)

    monkeypatch.setattr(TrainingRun, "collate", staticmethod(spy))
    run = TrainingRun(es_config.replace(name="patience"), threading.Event(), None)
    prompts, events = {}, []
    for event in run.events():
        events.append(event)
        if isinstance(event, Step):
            prompts[event.step] = run.learner.prompt().detach().clone()
    end, valid = events[-1], [e for e in events if isinstance(e, Validation)]
    assert isinstance(end, Finished) and end.stopped_early and not end.stopped, end
    assert end.step == valid[-1].step < run.total and valid[-1].stopping and valid[-1].without_gain == 3
    assert end.best_step == valid[-1].best_step == min(valid, key=lambda e: e.loss).step
    assert [e.step for e in valid] == list(range(2, end.step + 1, 2))
    saved, metadata = RunFolder.open(Path(es_config.machine.runs_dir) / "patience").load_prompt()
    assert torch.equal(saved, prompts[end.best_step]) and not torch.equal(saved, prompts[end.step])
    assert torch.equal(run.learner.prompt().cpu(), saved) and metadata["best_step"] == str(end.best_step)
    started = next(e for e in events if isinstance(e, Started))
    assert started.n_validation == valid[0].n_pairs == len(run.session.split.validation) > 0
    encoder = run.session.encoder
    held_out = [encoder.encode(p.x, p.y) for p in run.session.split.validation]
    assert trained_on and not any(e in held_out for e in trained_on)
    history = RunFolder.open(Path(es_config.machine.runs_dir) / "patience").events()
    assert [e for e in history if isinstance(e, Validation)] == valid and history[-1] == end


def test_bad_settings_are_one_line(tiny_config, capsys):
    base = [
        "train",
        "--task",
        "antonyms",
        "--model",
        tiny_config.problem.model,
        "--data",
        tiny_config.problem.data,
        "--device",
        "cpu",
        "--runs-dir",
        tiny_config.machine.runs_dir,
        "--steps",
        "2",
    ]
    for flags, words in (
        (["--val-fraction", "1"], "val_fraction must be at least 0 and below 1"),
        (["--val-fraction", "-0.1"], "val_fraction must be at least 0 and below 1"),
        (["--val-fraction", "nan"], "val_fraction must be a finite number"),
        (["--stop-patience", "2"], "stop_patience 2 needs a validation split"),
        (["--stop-patience", "-1", "--val-fraction", "0.2"], "stop_patience must be 0 or more"),
        (["--mode", "hard", "--val-fraction", "0.2"], "val_fraction is for soft prompts"),
        (["--val-fraction", "0.99"], "val_fraction 0.99 leaves none of the 18 training pairs"),
    ):
        capsys.readouterr()
        assert main(base + flags) == 2, flags
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("promptgrad: error: ") and words in err[0], (flags, err)
    assert not Path(tiny_config.machine.runs_dir).exists() or not any(Path(tiny_config.machine.runs_dir).iterdir())


def stopped_at(config: TrainConfig, step: int) -> Path:
    stop = threading.Event()
    for event in train(config, stop):
        if isinstance(event, Step) and event.step == step:
            stop.set()
    assert isinstance(event, Finished) and event.stopped and event.step == step
    return Path(config.machine.runs_dir) / config.machine.name


def test_resumed_runs_choose_and_stop_as_an_uninterrupted_one(es_config, capsys):
    straight = logged(train(es_config.replace(name="straight")))
    a, _ = RunFolder.open(Path(es_config.machine.runs_dir) / "straight").load_prompt()
    for stop_at in (4, 5):  # 4: before step 4's validation score (owed on resume); 5: just after it
        run = stopped_at(es_config.replace(name=f"stopped-{stop_at}"), stop_at)
        resumed = logged(train(RunFolder.open(run).config(), resume=run))
        assert isinstance(resumed[0], Started) and resumed[0].start_step == stop_at
        assert resumed[-1] == Finished(**{**straight[-1].__dict__, "prompt_path": str(run / "prompt.safetensors")})
        b, _ = RunFolder.open(run).load_prompt()
        assert torch.equal(a, b), stop_at
        history = RunFolder.open(run).events()
        assert [e for e in history if isinstance(e, Validation)] == [e for e in straight if isinstance(e, Validation)]
        assert [e.step for e in history if isinstance(e, Step)] == list(range(1, straight[-1].step + 1))
    # a run that stopped early is resumed only with more patience, and says so in one line
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and f"stopped early at step {straight[-1].step}" in err[0] and "stop_patience above 3" in err[0]
    ), err
    assert main(["train", "--resume", str(run), "--stop-patience", "4"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "validation loss" in out and "stopped early at step" in out and "the best on the validation pairs" in out


def test_the_benchmark_reports_both_variants_per_task_and_seed(tiny_gpt2, tiny_data, tmp_path):
    """benchmarks/early_stopping.py end to end on the tiny model (its numbers mean something only on a real one)."""
    out = tmp_path / "early.json"
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "early_stopping.py"
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            "--model",
            tiny_gpt2,
            "--tasks",
            "antonyms",
            "--set",
            f"data={tiny_data}",
            "--set",
            "lr=0.3",
            "--set",
            "warmup_steps=0",
            "--seeds",
            "0",
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--eval-every",
            "2",
            "--stop-patience",
            "1",
            "--device",
            "cpu",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (
        done.stdout.startswith("model ") and " on cpu (" in done.stdout.splitlines()[0]
    )  # the CPU and its flags first
    report = json.loads(out.read_text())
    rows = {r["variant"]: r for r in report["rows"]}
    assert set(rows) == {"all-train", "early"} and rows["all-train"]["n_validation"] == 0
    assert (
        rows["early"]["n_validation"] > 0
        and rows["early"]["n_train"] + rows["early"]["n_validation"] == rows["all-train"]["n_train"]
    )
    assert (
        rows["early"]["steps"] < rows["early"]["total_steps"]
    )  # the tiny model's validation loss rises at once: patience 1 stops it
    assert "early - all-train, per task and seed: test loss" in done.stdout


def test_the_tui_chart_draws_the_validation_loss_and_forgets_it_past_a_resume():
    from promptgrad_tui.widgets.loss_chart import VALID, Curves, LossChart

    def scored(step: int, loss: float) -> Validation:
        return Validation(step, loss, 0.5, 13, loss, step, 0)

    curves = Curves.of(
        [Started("runs/x", "m", "cpu", "fp32", 51, 36, 80, 0, 4, n_validation=13), scored(4, 3.0), scored(8, 2.5)]
    )
    assert (curves.valid_steps, curves.valid_loss) == ([4, 8], [3.0, 2.5])
    chart = LossChart()
    chart.curves = curves
    assert ("scatter", [4, 8], [3.0, 2.5], VALID[0], VALID[1]) in chart.series(80)
    assert any("validation (v)" in entry.plain for entry in chart.legend_entries())
    curves.add(Started("runs/x", "m", "cpu", "fp32", 51, 36, 80, 6, 4, n_validation=13))  # resumed from step 6
    assert curves.valid_steps == [4]


def test_the_eta_counts_the_validation_scores_still_to_come(tiny_config):
    from promptgrad.train.early_stopping import EarlyStopping
    from promptgrad.train.session import open_session

    session = open_session(tiny_config.replace(val_fraction=0.25, eval_every=2, eval_size=3))
    n_validation = len(session.split.validation)
    assert n_validation > 0
    run = TrainingRun(session.config, threading.Event(), None, session=session)
    run.total, run.pair_seconds = 6, 1.0  # so the ETA counts pairs still to score

    def pairs_left(step: int) -> float:
        run.step = step
        return run.seconds_to_go(step_seconds=0.0, batch_size=4)

    # at step 2 the looks of steps 2 and 4 are still to come (the ETA is given right after the step,
    # before its look); at step 3 only step 4's: one subset of 3 test pairs less
    assert pairs_left(2) - pairs_left(3) == 3
    without = pairs_left(2)
    run.early = EarlyStopping(0)
    # with a validation split: the validation pairs at each of those looks, and once more at the end
    assert pairs_left(2) - without == 3 * n_validation
