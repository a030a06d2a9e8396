"""Resume continues the same run: what defines it comes from its folder, precision included; more
steps extend it without the learning rate ever jumping up, and without a second final record."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from conftest import logged

import promptgrad.precision
from promptgrad.cli import main
from promptgrad.events import Evaluation, Extended, Finished, Started, Step
from promptgrad.run_folder import RunFolder
from promptgrad.schedule import Schedule
from promptgrad.training import train


def stop_at(config, step: int) -> Path:
    stop = threading.Event()
    for event in train(config, stop):
        if isinstance(event, Step) and event.step == step:
            stop.set()
    assert isinstance(event, Finished) and event.stopped
    return Path(config.runs_dir) / config.name


@pytest.mark.parametrize("flag, value", [("--seed", "3"), ("--data", "antonyms"), ("--test-fraction", "0.3"),
                                         ("--train-size", "5"), ("--batch-size", "8"), ("--precision", "bf16"),
                                         ("--template", "{prompt} {x} is the opposite of {y}"), ("--mode", "hard")])
def test_resume_refuses_to_change_what_defines_the_run(tiny_config, capsys, flag, value):
    run = stop_at(tiny_config.replace(name="defined", checkpoint_every=0), 2)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    capsys.readouterr()
    assert main(["train", "--resume", str(run), flag, value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    setting = flag[2:].replace("-", "_")
    assert len(err) == 1 and f"{setting} is " in err[0] and "start a new run from this one's prompt" in err[0], err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # refused before touching anything


def test_the_schedule_never_jumps_up_when_a_run_is_extended():
    schedule = Schedule(peak=0.03, warmup_steps=10, kind="cosine", total_steps=100)
    for at in (5, 50, 99, 100):
        longer = schedule.extended(at, 400)
        rates = [longer.at(k) for k in range(400)]
        assert rates[:at] == [schedule.at(k) for k in range(at)]  # the steps already taken are as they were
        after = rates[max(at, 10):]
        assert all(b <= a for a, b in zip(after, after[1:])), at  # from the peak on, never up
        assert longer.at(at) <= schedule.at(at) + 1e-12 and longer.at(399) < 1e-5
    twice = schedule.extended(50, 200).extended(120, 300)
    assert all(twice.at(k + 1) <= twice.at(k) for k in range(10, 300))
    assert Schedule.from_state(0.03, 10, "cosine", twice.to_state()) == twice
    constant = Schedule(0.03, 0, "constant", 100).extended(50, 400)
    assert {constant.at(k) for k in range(400)} == {0.03}


def test_a_finished_run_extended_goes_on_from_its_step_with_one_final_record(tiny_config, capsys):
    config = tiny_config.replace(name="extend", steps=4, eval_size=4, warmup_steps=1)
    first = logged(train(config))
    assert isinstance(first[-1], Finished) and first[-1].step == 4
    run = Path(config.runs_dir) / "extend"
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 2  # finished, and no more steps asked for
    assert "finished at step 4; to train on, give more steps than 4" in capsys.readouterr().err
    lr_before = [e.lr for e in first if isinstance(e, Step)][-1]
    events = logged(train(RunFolder.open(run).config().replace(steps=7), resume=run))
    assert isinstance(events[0], Started) and events[0].start_step == 4 and events[0].total_steps == 7
    assert isinstance(events[1], Extended) and events[1].previous_total_steps == 4 and events[1].total_steps == 7
    rates = [e.lr for e in events if isinstance(e, Step)]
    assert [e.step for e in events if isinstance(e, Step)] == [5, 6, 7]
    assert rates[0] <= lr_before and all(b <= a for a, b in zip(rates, rates[1:]))
    assert RunFolder.open(run).config().steps == 7
    history = RunFolder.open(run).events()
    assert [e.step for e in history if isinstance(e, Finished)] == [7]  # the first end's record was cut
    assert [e.step for e in history if isinstance(e, Step)] == list(range(1, 8))
    # the baselines were scored on the whole test set at the first end; the second end repeats, not recomputes, them
    full = [e for e in events if isinstance(e, Evaluation) and e.prompt in ("hand-written", "untrained")]
    assert {(e.prompt, e.test_loss) for e in full} == {(e.prompt, e.test_loss) for e in first
                                                       if isinstance(e, Evaluation) and e.n_pairs == full[0].n_pairs
                                                       and e.prompt in ("hand-written", "untrained")}


def test_init_from_a_run_starts_where_that_run_ended(tiny_config):
    logged(train(tiny_config.replace(name="parent", steps=2)))
    parent, _ = RunFolder.open(Path(tiny_config.runs_dir) / "parent").load_prompt()
    child = logged(train(tiny_config.replace(name="child", steps=1, init=f"run:{tiny_config.runs_dir}/parent", seed=5)))
    assert isinstance(child[-1], Finished)
    assert child[1].prompt == "hand-written"
    from promptgrad.cli import open_run

    session, _ = open_run(Path(tiny_config.runs_dir) / "child")
    from promptgrad.training import make_learner

    torch.testing.assert_close(make_learner(session).initial_prompt().cpu(), parent)


# ---- precision: decided once, from what the device is, then recorded ------------------------------

def test_auto_precision_is_the_same_every_time_and_recorded(tiny_config, tmp_path):
    path = tmp_path / "auto.toml"
    tiny_config.replace(precision="auto", steps=1, eval_size=2, num_predictions=0, eval_every=0).save(path)
    for i in range(10):
        assert main(["train", "--config", str(path), "--name", f"auto{i}"]) == 0
    recorded = {RunFolder.open(Path(tiny_config.runs_dir) / f"auto{i}").config().precision for i in range(10)}
    expected = promptgrad.precision.choose_precision("auto", torch.device("cpu"), 64).precision
    assert recorded == {expected}


@pytest.mark.parametrize("here, there", [("bf16", "fp32"), ("fp32", "bf16")])
def test_resume_and_eval_use_the_recorded_precision_not_a_new_decision(tiny_config, monkeypatch, capsys, here, there):
    """The run starts where auto means `here`; resumed and evaluated where auto would mean `there`."""
    flags = {"bf16": {"cpu_name": "test", "avx512_bf16": True}, "fp32": {"cpu_name": "test"}}
    monkeypatch.setattr(promptgrad.precision, "cpu_capabilities", lambda: flags[here])
    run = stop_at(tiny_config.replace(name=f"from-{here}", precision="auto", checkpoint_every=0), 2)
    assert RunFolder.open(run).config().precision == here
    monkeypatch.setattr(promptgrad.precision, "cpu_capabilities", lambda: flags[there])
    events = logged(train(RunFolder.open(run).config(), resume=run))
    assert events[0].precision == here and isinstance(events[-1], Finished)
    capsys.readouterr()
    assert main(["eval", str(run)]) == 0
    assert f"computed in {here}" in " ".join(capsys.readouterr().out.split())  # the title may wrap
