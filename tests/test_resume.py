"""Resume continues the same run: what defines it comes from its folder, precision included; more
steps extend it without the learning rate ever jumping up, and without a second final record."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from helpers import logged

import promptgrad.model.precision
from promptgrad.cli.main import main
from promptgrad.errors import UserError
from promptgrad.events import Evaluation, Extended, Finished, Started, Step
from promptgrad.store.run_facts import RunFacts
from promptgrad.store.run_folder import RunFolder
from promptgrad.train.loop import train
from promptgrad.train.schedule import Schedule


def stop_at(config, step: int) -> Path:
    stop = threading.Event()
    for event in train(config, stop):
        if isinstance(event, Step) and event.step == step:
            stop.set()
    assert isinstance(event, Finished) and event.stopped
    return Path(config.machine.runs_dir) / config.machine.name


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--seed", "3"),
        ("--data", "antonyms"),
        ("--test-fraction", "0.3"),
        ("--train-size", "5"),
        ("--batch-size", "8"),
        ("--precision", "bf16"),
        ("--template", "{prompt} {x} is the opposite of {y}"),
        ("--mode", "hard"),
    ],
)
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
        after = rates[max(at, 10) :]
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
    run = Path(config.machine.runs_dir) / "extend"
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 2  # finished, and no more steps asked for
    assert "finished at step 4; to train on, give more steps than 4" in capsys.readouterr().err
    events = logged(train(RunFolder.open(run).config().replace(steps=7), resume=run, extend_lr=0.02))
    assert isinstance(events[0], Started) and events[0].start_step == 4 and events[0].total_steps == 7
    assert isinstance(events[1], Extended) and events[1].previous_total_steps == 4 and events[1].total_steps == 7
    rates = [e.lr for e in events if isinstance(e, Step)]
    assert [e.step for e in events if isinstance(e, Step)] == [5, 6, 7]
    assert rates[0] == 0.02 and all(b <= a for a, b in zip(rates, rates[1:]))  # 3 added steps: no warm-up
    assert RunFolder.open(run).config().learning.steps == 7
    history = RunFolder.open(run).events()
    assert [e.step for e in history if isinstance(e, Finished)] == [7]  # the first end's record was cut
    assert [e.step for e in history if isinstance(e, Step)] == list(range(1, 8))
    # the baselines were scored on the whole test set at the first end; the second end repeats, not recomputes, them
    repeated = ("hand-written", "k-shot", "untrained")  # with their intervals
    full = [e for e in events if isinstance(e, Evaluation) and e.prompt in repeated]
    assert {(e.prompt, e.test_loss, e.loss_low, e.accuracy_high) for e in full} == {
        (e.prompt, e.test_loss, e.loss_low, e.accuracy_high)
        for e in first
        if isinstance(e, Evaluation) and e.n_pairs == full[0].n_pairs and e.prompt in repeated
    }
    assert len({e.prompt for e in full}) == 3 and all(e.loss_low is not None for e in full)


def test_the_schedule_of_added_steps_with_a_new_peak():
    """A restart: a warm-up (the run's, at most a tenth of the added steps) to the new peak, then the run's
    own decay to zero at the new end; recorded in the checkpoint's state like any extension."""
    schedule = Schedule(peak=0.03, warmup_steps=10, kind="cosine", total_steps=40)
    assert schedule.decayed(40) and not schedule.decayed(39)
    restarted = schedule.restarted(40, 100, 0.01, warmup_limit=10)
    rates = [restarted.at(k) for k in range(100)]
    assert rates[:40] == [schedule.at(k) for k in range(40)]
    assert rates[40:46] == pytest.approx([0.01 * k / 6 for k in range(1, 7)])  # 60 added steps: a warm-up of 6
    assert max(rates[40:]) == pytest.approx(0.01) and all(b <= a for a, b in zip(rates[45:], rates[46:]))
    assert restarted.decayed(100) and Schedule.from_state(0.03, 10, "cosine", restarted.to_state()) == restarted
    # stopped during the restart's warm-up and given more steps: the warm-up is kept, stretched to the new end
    longer = restarted.extended(42, 200)
    assert [longer.at(k) for k in range(46)] == rates[:46] and longer.at(46) > longer.at(150) > longer.at(199)
    # a checkpoint written before restarts existed holds [start, end, lr]
    old = Schedule.from_state(0.03, 10, "cosine", {"total_steps": 40, "extensions": [[20, 60, 0.01]]})
    assert old.at(20) == 0.01 and old.extensions[0].warmup == 0
    assert {Schedule(0.03, 0, "constant", 40).restarted(40, 60, 0.01, 0).at(k) for k in range(40, 60)} == {0.01}


def finished_cosine_run(tiny_config, name: str = "done") -> Path:
    config = tiny_config.replace(name=name, steps=4, eval_size=4, warmup_steps=1, checkpoint_every=0)
    assert isinstance(logged(train(config))[-1], Finished)
    return Path(config.machine.runs_dir) / name


def test_extending_a_finished_cosine_run_is_refused_naming_a_new_peak_or_a_branch(tiny_config, capsys):
    """Its learning rate has decayed to 0: more steps alone would be spent changing nothing. Refused in one
    line before any is spent, the folder untouched, naming both ways on."""
    run = finished_cosine_run(tiny_config)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--steps", "9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "learning rate decayed to 0" in err[0], err
    assert "--extend-lr" in err[0] and f"--init run:{run}" in err[0]
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    # a new peak on a run given no more steps, or on a new run, is refused too
    assert main(["train", "--resume", str(run), "--extend-lr", "0.01"]) == 2
    assert "give more steps than 4" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--steps", "9", "--extend-lr", "nan"]) == 2
    assert "extend_lr must be a number above 0" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "--steps",
                "2",
                "--extend-lr",
                "0.01",
                "--model",
                tiny_config.problem.model,
                "--task",
                "antonyms",
                "--data",
                tiny_config.problem.data,
                "--runs-dir",
                tiny_config.machine.runs_dir,
                "--name",
                "new",
            ]
        )
        == 2
    )
    assert "a new run takes lr" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_a_finished_run_extended_with_a_new_peak_learns_and_records_it(tiny_config, capsys):
    run = finished_cosine_run(tiny_config)
    prompt_before, _ = RunFolder.open(run).load_prompt()
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--steps", "24", "--extend-lr", "0.02"]) == 0
    out = capsys.readouterr().out
    assert "a new peak of 0.02, then decays to 0 by step 24" in out
    history = RunFolder.open(run).events()
    extended = [e for e in history if isinstance(e, Extended)]
    assert extended == [Extended(4, 4, 24, 0.02, warmup_steps=1, new_peak=True)]  # the run's 1 warm-up step (< 20 / 10)
    rates = [e.lr for e in history if isinstance(e, Step) and e.step > 4]
    assert len(rates) == 20 and rates[0] == pytest.approx(0.02) and all(b <= a for a, b in zip(rates, rates[1:]))
    prompt_after, _ = RunFolder.open(run).load_prompt()
    assert not torch.equal(prompt_before, prompt_after)  # it learned: the added steps were not at lr 0
    assert [e.step for e in history if isinstance(e, Finished)] == [24]


def test_a_run_extended_with_a_new_peak_interrupted_and_resumed_ends_as_if_never_interrupted(tiny_config, tmp_path):
    """nanoGPT-style exactness: the restart lives in the checkpoint's schedule, so the resumed run (given
    no --extend-lr again) follows it step for step."""
    import shutil

    run = finished_cosine_run(tiny_config.replace(warmup_steps=3), "base")
    straight, cut = tmp_path / "straight", tmp_path / "cut"
    shutil.copytree(run, straight)
    shutil.copytree(run, cut)
    whole = logged(
        train(RunFolder.open(straight).config().replace(steps=34, checkpoint_every=0), resume=straight, extend_lr=0.02)
    )
    stop = threading.Event()
    for event in train(
        RunFolder.open(cut).config().replace(steps=34, checkpoint_every=0), stop, resume=cut, extend_lr=0.02
    ):
        if isinstance(event, Step) and event.step == 6:  # inside the restart's warm-up (3 steps from step 4)
            stop.set()
    assert isinstance(event, Finished) and event.stopped and event.step == 6
    assert main(["train", "--resume", str(cut), "--extend-lr", "0.02"]) == 2  # already given: not twice
    resumed = logged(train(RunFolder.open(cut).config(), resume=cut))
    assert not any(isinstance(e, Extended) for e in resumed)
    added = {e.step: (e.lr, e.loss) for e in RunFolder.open(cut).events() if isinstance(e, Step) and e.step > 4}
    assert added == {e.step: (e.lr, e.loss) for e in whole if isinstance(e, Step)} and len(added) == 30
    assert resumed[-1].test_loss == whole[-1].test_loss and resumed[-1].step == 34
    torch.testing.assert_close(
        RunFolder.open(cut).load_prompt()[0], RunFolder.open(straight).load_prompt()[0], rtol=0, atol=0
    )


def test_an_unfinished_run_given_more_steps_goes_on_decaying_without_a_jump(tiny_config):
    run = stop_at(tiny_config.replace(name="half", steps=8, warmup_steps=1, checkpoint_every=0), 4)
    lr_before = [e.lr for e in RunFolder.open(run).events() if isinstance(e, Step)][-1]
    events = logged(train(RunFolder.open(run).config().replace(steps=12), resume=run))
    assert isinstance(events[1], Extended) and not events[1].new_peak and events[1].warmup_steps == 0
    rates = [e.lr for e in events if isinstance(e, Step)]
    assert len(rates) == 8 and 0 < rates[0] <= lr_before and all(b <= a for a, b in zip(rates, rates[1:]))
    assert isinstance(events[-1], Finished) and not events[-1].stopped


def test_init_from_a_run_starts_where_that_run_ended(tiny_config):
    logged(train(tiny_config.replace(name="parent", steps=2)))
    parent, _ = RunFolder.open(Path(tiny_config.machine.runs_dir) / "parent").load_prompt()
    child = logged(
        train(tiny_config.replace(name="child", steps=1, init=f"run:{tiny_config.machine.runs_dir}/parent", seed=5))
    )
    assert isinstance(child[-1], Finished)
    assert next(e for e in child if isinstance(e, Evaluation)).prompt == "hand-written"
    from promptgrad.cli.main import open_run

    session, _ = open_run(Path(tiny_config.machine.runs_dir) / "child")
    from promptgrad.train.loop import make_learner

    torch.testing.assert_close(make_learner(session).initial_prompt().cpu(), parent)


# ---- precision: decided once, from what the device is, then recorded ------------------------------


def test_auto_precision_is_the_same_every_time_and_recorded(tiny_config, tmp_path):
    path = tmp_path / "auto.toml"
    tiny_config.replace(precision="auto", steps=1, eval_size=2, num_predictions=0, eval_every=0).save(path)
    for i in range(10):
        assert main(["train", "--config", str(path), "--name", f"auto{i}"]) == 0
    recorded = {RunFacts.load(Path(tiny_config.machine.runs_dir) / f"auto{i}").precision for i in range(10)}
    expected = promptgrad.model.precision.choose_precision("auto", torch.device("cpu"), 64).precision
    assert recorded == {expected}


CPU_FLAGS = {
    "avx512-bf16": {"cpu_name": "test", "avx512_bf16": True},
    "avx2": {"cpu_name": "test"},
    "amx": {"cpu_name": "test", "amx_bf16": True},
}  # amx: auto picks fp32 for the tiny model, bf16 is native


@pytest.mark.parametrize("here, there, recorded", [("avx512-bf16", "amx", "bf16"), ("avx2", "avx512-bf16", "fp32")])
def test_resume_and_eval_use_the_recorded_precision_not_a_new_decision(
    tiny_config, monkeypatch, capsys, here, there, recorded
):
    """The run starts where auto means one precision; resumed and evaluated where auto would mean the other."""
    monkeypatch.setattr(promptgrad.model.precision, "cpu_capabilities", lambda: CPU_FLAGS[here])
    run = stop_at(tiny_config.replace(name=f"from-{here}", precision="auto", checkpoint_every=0), 2)
    assert RunFacts.load(run).precision == recorded and RunFolder.open(run).config().machine.precision == "auto"
    monkeypatch.setattr(promptgrad.model.precision, "cpu_capabilities", lambda: CPU_FLAGS[there])
    assert promptgrad.model.precision.choose_precision("auto", torch.device("cpu"), 64).precision != recorded
    events = logged(train(RunFolder.open(run).config(), resume=run))
    assert events[0].precision == recorded and isinstance(events[-1], Finished)
    capsys.readouterr()
    assert main(["eval", str(run)]) == 0
    assert f"computed in {recorded}" in " ".join(capsys.readouterr().out.split())  # the title may wrap


def test_a_bf16_run_is_not_resumed_or_evaluated_where_bf16_is_only_emulated(tiny_config, monkeypatch, capsys):
    """A bf16 run taken to a CPU without bf16 instructions would run many times slower without a word."""
    monkeypatch.setattr(promptgrad.model.precision, "cpu_capabilities", lambda: CPU_FLAGS["avx512-bf16"])
    run = stop_at(tiny_config.replace(name="bf16", precision="auto", checkpoint_every=0), 2)
    monkeypatch.setattr(promptgrad.model.precision, "cpu_capabilities", lambda: CPU_FLAGS["avx2"])
    before = (run / "metrics.jsonl").read_bytes()
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "only emulates" in err[0] and f"--init run:{run} --precision fp32" in err[0]
    assert (run / "metrics.jsonl").read_bytes() == before
    assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "only emulates" in err[0] and "--precision fp32" in err[0]
    assert main(["eval", str(run), "--precision", "fp32"]) == 0
    assert "computed in fp32" in " ".join(capsys.readouterr().out.split())


def test_a_gpu_before_ampere_is_not_taken_for_native_bf16(monkeypatch):
    """torch.cuda.is_bf16_supported() counts emulation by default (yes on a T4 or V100): auto must pick
    fp32 there, and ask about the chosen GPU, not the current one."""
    asked = []

    def capability(device):
        asked.append(device)
        return {0: (8, 0), 1: (7, 5)}[device.index]

    monkeypatch.setattr(torch.cuda, "get_device_capability", capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: {0: "A100", 1: "T4"}[device.index])
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    t4, a100 = torch.device("cuda", 1), torch.device("cuda", 0)
    assert promptgrad.model.precision.choose_precision("auto", t4, 1280).precision == "fp32"
    assert promptgrad.model.precision.choose_precision("auto", a100, 1280).precision == "bf16"
    assert asked == [t4, a100]
    with pytest.raises(UserError, match="T4 only emulates"):
        promptgrad.model.precision.check_recorded_precision("bf16", t4, "runs/x", evaluating=False)


# ---- the data a run split is the data it resumes and is evaluated on ---------------------------------


def test_resume_and_eval_refuse_data_that_changed_since_the_run_started(tiny_config, tmp_path, capsys):
    data = Path(tiny_config.problem.data)
    run = stop_at(tiny_config.replace(name="data", checkpoint_every=0), 2)
    original = data.read_text()
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    for changed in (
        original + '{"x": "near", "y": "far"}\n',  # a pair more: the split moves
        original.replace('"hot"', '"warm"', 1),
    ):  # the same count, another pair
        data.write_text(changed)
        capsys.readouterr()
        for command in (["train", "--resume", str(run)], ["eval", str(run)], ["predict", str(run), "hot"]):
            assert main(command) == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and "changed since it started" in err[0] and f"--init run:{run}" in err[0], err
        assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    data.write_text(original)
    assert main(["train", "--resume", str(run)]) == 0


def test_a_relative_data_path_means_the_same_file_from_any_working_directory(tiny_config, tmp_path, monkeypatch):
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    (here / "pairs.jsonl").write_text(Path(tiny_config.problem.data).read_text())
    (elsewhere / "pairs.jsonl").write_text(
        '{"x": "in", "y": "out"}\n{"x": "out", "y": "in"}\n' * 3
    )  # another file, same name
    monkeypatch.chdir(here)
    run = stop_at(tiny_config.replace(name="relative", data="pairs.jsonl", checkpoint_every=0), 2)
    assert RunFolder.open(run).config().problem.data == str(here / "pairs.jsonl")
    monkeypatch.chdir(elsewhere)
    assert main(["train", "--resume", str(run), "--data", str(here / "pairs.jsonl")]) == 0  # the same file: allowed
    assert main(["eval", str(run)]) == 0
    assert (
        main(["train", "--resume", str(run), "--steps", "8", "--data", "pairs.jsonl"]) == 2
    )  # here that names another


def test_a_run_stopped_while_its_baselines_are_scored_scores_them_on_resume(tiny_config):
    """A stop during the first look (the baselines, scored after step 1) is acted on between batches; the
    resumed run scores them then, so its record holds every baseline as an uninterrupted run's does."""
    config = tiny_config.replace(steps=4, eval_every=0, eval_size=0)  # eval_size 0: the first look is the only one

    def baselines(events) -> dict:
        return {
            (e.prompt, e.text): (e.test_loss, e.accuracy)
            for e in events
            if isinstance(e, Evaluation) and e.prompt != "learned"
        }

    whole = baselines(train(config.replace(name="whole")))
    assert {prompt for prompt, _ in whole} == {"hand-written", "k-shot", "untrained"}  # no majority: no answer repeats

    stop, seen = threading.Event(), []
    for event in train(config.replace(name="cut"), stop):
        seen.append(event)
        if isinstance(event, Evaluation) and event.prompt == "hand-written":
            stop.set()  # the next prompt's scoring stops after its first batch
    assert isinstance(event, Finished) and event.stopped and event.step == 1
    run = Path(config.machine.runs_dir) / "cut"
    assert len(baselines(seen)) < len(whole)  # the stop came before the baselines were all scored
    for _ in train(config.replace(name="cut"), resume=run):
        pass
    assert baselines(RunFolder.open(run).events()) == whole
