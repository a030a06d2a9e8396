"""--report-to: the experiment trackers fed from the event stream (core/promptgrad/integrations/trackers.py). TensorBoard and MLflow's
file store are read back and compared with metrics.jsonl; trackio and wandb (offline) run where installed."""

from __future__ import annotations

import ast
import errno
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import TINY_PAIRS
from transformers import AutoModelForCausalLM, AutoTokenizer

import promptgrad
from promptgrad.cli.main import main
from promptgrad.config import TrainConfig
from promptgrad.errors import UserError
from promptgrad.events import Evaluation, Finished, Progress, Step, TrackerFailed, Validation
from promptgrad.integrations.trackers import TensorBoard, metrics_of, tracked
from promptgrad.store.run_folder import FILES
from promptgrad.train.loop import train


def metrics_jsonl(run: Path, kind: str) -> list[dict]:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["event"] == kind]


def scalars(log_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


def mlflow_client(tracking: Path):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=(tracking / "mlruns").absolute().as_uri())


def only_mlflow_run(tracking: Path):
    client = mlflow_client(tracking)
    (experiment,) = [e for e in client.search_experiments() if e.name == "promptgrad"]
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    return client, runs[0]


@pytest.fixture()
def reporting(tiny_config, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return tiny_config.replace(report_to=["tensorboard", "mlflow"], tracker_dir=str(tmp_path / "tracking"))


def test_tensorboard_and_mlflow_hold_the_losses_of_metrics_jsonl_and_a_resume_goes_on_in_the_same_runs(
    reporting, tmp_path
):
    run, tracking = tmp_path / "runs" / "tiny", tmp_path / "tracking"
    events = train(reporting)  # 6 steps, a checkpoint at 3; the reader goes away at step 5, as a crash would leave it
    for event in events:
        assert not isinstance(event, TrackerFailed), event
        if isinstance(event, Step) and event.step == 5:
            break
    events.close()
    losses = [(r["step"], r["loss"]) for r in metrics_jsonl(run, "step")]
    assert [s for s, _ in losses] == [1, 2, 3, 4, 5]
    logged = scalars(tracking / "tensorboard" / "tiny", "train/loss")
    assert [s for s, _ in logged] == [1, 2, 3, 4, 5]
    assert [v for _, v in logged] == pytest.approx([v for _, v in losses], rel=1e-6)  # stored as float32
    client, before = only_mlflow_run(tracking)
    assert before.info.run_name == "tiny" and before.info.status == "KILLED"  # closed as stopped, resumable
    assert (
        sorted((m.step, m.value) for m in client.get_metric_history(before.info.run_id, "train/loss")) == losses
    )  # doubles
    assert before.data.params["steps"] == "6" and before.data.params["model"] == reporting.problem.model
    assert before.data.tags["promptgrad.run_dir"] == str(run)

    # resumed from the checkpoint at step 3, one step longer: steps 4 and 5 are taken again
    resumed = list(train(TrainConfig.load(run / "config.toml").replace(steps=7), resume=run))
    assert isinstance(resumed[-1], Finished) and resumed[-1].step == 7 and not resumed[-1].stopped
    assert not [e for e in resumed if isinstance(e, TrackerFailed)]
    losses = [(r["step"], r["loss"]) for r in metrics_jsonl(run, "step")]
    assert [s for s, _ in losses] == [1, 2, 3, 4, 5, 6, 7]

    board = (
        tracking / "tensorboard" / "tiny"
    )  # one folder; what was logged after the checkpoint is purged, as in metrics.jsonl
    logged = scalars(board, "train/loss")
    assert [s for s, _ in logged] == [1, 2, 3, 4, 5, 6, 7]
    assert [v for _, v in logged] == pytest.approx([v for _, v in losses], rel=1e-6)
    final = metrics_jsonl(run, "finished")[0]
    assert scalars(board, "finished/test_loss") == [(7, pytest.approx(final["test_loss"], rel=1e-6))]
    learned = [(r["step"], r["test_loss"]) for r in metrics_jsonl(run, "evaluation") if r["prompt"] == "learned"]
    assert scalars(board, "eval/learned/test_loss") == [(s, pytest.approx(v, rel=1e-6)) for s, v in learned]

    client, after = only_mlflow_run(tracking)  # the same run, reopened and finished
    assert after.info.run_id == before.info.run_id and after.info.status == "FINISHED"
    history = client.get_metric_history(after.info.run_id, "train/loss")
    assert {m.step: m.value for m in history} == dict(
        losses
    )  # MLflow keeps both values of steps 4 and 5: the later is the run's
    assert after.data.params["steps"] == "6" and after.data.tags["resumed/steps"] == "7 (from step 3)"

    assert {p.name for p in run.iterdir()} <= set(FILES)  # the trackers wrote nothing into the run folder


def test_a_missing_tracker_package_is_one_line_before_the_run_starts(
    tiny_gpt2, tiny_data, tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # what an import of a package not installed does
    status = main(
        [
            "train",
            "--task",
            "antonyms",
            "--model",
            tiny_gpt2,
            "--data",
            tiny_data,
            "--steps",
            "2",
            "--device",
            "cpu",
            "--precision",
            "fp32",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--name",
            "tiny",
            "--report-to",
            "tensorboard",
            "--tracker-dir",
            str(tmp_path / "tracking"),
        ]
    )
    assert status == 2
    assert capsys.readouterr().err == (
        "promptgrad: error: report_to tensorboard needs the tensorboard package: "
        "pip install 'promptgrad[tensorboard]'\n"
    )
    assert not (tmp_path / "runs").exists() and not (tmp_path / "tracking").exists()  # refused before anything was made


def test_report_to_names_a_tracker(tiny_data, capsys):
    with pytest.raises(
        UserError,
        match=r"report_to 'tensorbord' is not a tracker; each is one of tensorboard, mlflow, "
        r"trackio, wandb \(repeat the flag for several\)",
    ):
        TrainConfig(report_to=["tensorbord"])
    assert main(["train", "--task", "antonyms", "--data", tiny_data, "--report-to", "tensorboard,mlflow"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "report_to 'tensorboard,mlflow' is not a tracker" in err
    assert TrainConfig.from_dict({"report_to": "wandb"}).watch.report_to == ["wandb"]  # one text, as a form gives it


def test_a_tracker_that_fails_mid_run_is_reported_once_and_the_run_finishes(tiny_config, tmp_path, monkeypatch):
    calls = []
    real_log = TensorBoard.log

    def log(self, step, metrics):
        calls.append(step)
        if step >= 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_log(self, step, metrics)

    monkeypatch.setattr(TensorBoard, "log", log)
    config = tiny_config.replace(steps=3, report_to=["tensorboard"], tracker_dir=str(tmp_path / "tracking"))
    events = list(train(config))
    assert isinstance(events[-1], Finished) and not events[-1].stopped and events[-1].step == 3
    (warning,) = [e for e in events if isinstance(e, TrackerFailed)]
    assert warning.tracker == "tensorboard" and warning.step == 2 and "No space left on device" in warning.message
    assert set(calls) == {1, 2}  # left out from then on
    assert len(metrics_jsonl(tmp_path / "runs" / "tiny", "step")) == 3  # the record is whole
    assert (
        scalars(tmp_path / "tracking" / "tensorboard" / "tiny", "train/loss")[0][0] == 1
    )  # closed, what it had is kept


def test_a_tracker_that_hangs_never_holds_the_run_up(tiny_config, tmp_path, monkeypatch):
    import promptgrad.integrations.trackers as trackers

    release = threading.Event()
    monkeypatch.setattr(
        TensorBoard, "log", lambda self, step, metrics: release.wait(60)
    )  # a server gone: minutes of retries
    monkeypatch.setattr(trackers, "FINISH_SECONDS", 1.0)
    config = tiny_config.replace(steps=2, report_to=["tensorboard"], tracker_dir=str(tmp_path / "tracking"))
    try:
        started = time.monotonic()
        events = list(train(config))
        took = time.monotonic() - started
    finally:
        release.set()
    assert isinstance(events[-1], Finished) and events[-1].step == 2
    (warning,) = [e for e in events if isinstance(e, TrackerFailed)]
    assert "did not finish within 1 s" in warning.message and "records left unwritten" in warning.message
    assert any(isinstance(e, Progress) and e.task == "writing to the trackers" for e in events)
    assert took < 55  # not the 60 s a single call of the tracker takes


def test_metrics_are_the_numbers_of_each_event_and_a_prompt_without_a_loss_is_skipped():
    assert metrics_of(Step(3, 0.5, 2.5, 0.01, 40.0, 1.0, 9.0)) == {
        "train/loss": 2.5,
        "train/lr": 0.01,
        "train/examples_per_s": 40.0,
        "train/epoch": 0.5,
    }
    assert metrics_of(Evaluation(3, "hand-written", 1.5, 0.25, 8, None, " antonyms: 'x'/y")) == {
        "eval/hand-written antonyms_ _x__y/test_loss": 1.5,
        "eval/hand-written antonyms_ _x__y/accuracy": 0.25,
    }
    assert metrics_of(Evaluation(3, "majority", None, 0.5, 8, None)) == {"eval/majority/accuracy": 0.5}
    assert metrics_of(Evaluation(3, "learned", 1.0, 0.5, 8, 0.9))["eval/learned/best_test_loss"] == 0.9
    validation = metrics_of(Validation(3, 1.2, 0.5, 4, 1.1, 2, 1, stopping=True))
    assert validation["validation/loss"] == 1.2 and validation["validation/best_step"] == 2
    assert "validation/stopping" not in validation and "validation/step" not in validation  # a flag, the axis
    assert metrics_of(Finished(6, True, None, None, "p")) == {}


def test_only_rank_0_of_a_data_parallel_run_reports(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # a rank that would report would say so
    config = TrainConfig(report_to=["tensorboard"])
    events = [Finished(1, False, 1.0, 0.5, "p")]
    monkeypatch.setenv("RANK", "1")
    assert list(tracked(iter(events), config, lambda: config, False)) == events
    monkeypatch.setenv("RANK", "0")
    assert [e.kind for e in tracked(iter(events), config, lambda: config, False)] == ["progress", "failed"]


TRACKIO_AND_WANDB = r"""
import sys
from pathlib import Path
from promptgrad.config import TrainConfig
from promptgrad.events import Evaluation, Finished, Started, Step
from promptgrad.integrations.trackers import tracked

tracking, run_dir, resumed = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
config = TrainConfig(report_to=["trackio", "wandb"], tracker_dir=str(tracking), steps=4)
start = 2 if resumed else 0
events = [Started(run_dir, "m", "cpu", "fp32", 18, 6, 4, start, 5)]
events += [Step(s, s / 5, 1.0 / s, 0.01, 10.0, 1.0, 1.0) for s in range(start + 1, start + 3)]
events += [Evaluation(start + 2, "learned", 0.5, 0.25, 6, 0.5), Finished(start + 2, False, 0.5, 0.25, "p")]
out = list(tracked(iter(events), config, lambda: config, resumed))
assert [e.kind for e in out if e.kind not in ("progress",)] == [e.kind for e in events], out
if resumed:
    from trackio.sqlite_storage import SQLiteStorage

    print("logged:", [(r["step"], r["train/loss"]) for r in SQLiteStorage.get_logs("promptgrad", "tiny") if "train/loss" in r])
"""


def test_trackio_and_wandb_offline_log_and_resume(tmp_path):
    pytest.importorskip("trackio")
    pytest.importorskip("wandb")
    tracking, run_dir = tmp_path / "tracking", str(tmp_path / "runs" / "tiny")
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio"), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    for resumed in ("0", "1"):
        done = subprocess.run(
            [sys.executable, "-c", TRACKIO_AND_WANDB, str(tracking), run_dir, resumed],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
    # trackio: one run, named after the folder, its steps going on
    (logged,) = [line.removeprefix("logged: ") for line in done.stdout.splitlines() if line.startswith("logged: ")]
    assert ast.literal_eval(logged) == [(1, 1.0), (2, 0.5), (3, 1 / 3), (4, 0.25)]
    # wandb: the id recorded when the run began is the one the resume went on with
    (ids,) = (tracking / "run-ids").iterdir()  # trackio goes on by the run's name
    assert ids.name.endswith("-wandb.json")
    wandb_id = json.loads(ids.read_text())["id"]
    offline = sorted(p.name for p in (tracking / "wandb").iterdir() if p.name.startswith("offline-run-"))
    assert len(offline) == 2 and all(name.endswith(wandb_id) for name in offline)


def test_learn_reports_to_the_trackers_too(tiny_gpt2, tmp_path):
    model, tokenizer = AutoModelForCausalLM.from_pretrained(tiny_gpt2), AutoTokenizer.from_pretrained(tiny_gpt2)
    result = promptgrad.learn(
        model,
        tokenizer,
        TINY_PAIRS,
        steps=2,
        batch_size=4,
        eval_size=8,
        num_predictions=0,
        report_to=["tensorboard"],
        tracker_dir=str(tmp_path / "tracking"),
        name="notebook",
    )
    losses = [(e.step, e.loss) for e in result.events if isinstance(e, Step)]
    logged = scalars(tmp_path / "tracking" / "tensorboard" / "notebook", "train/loss")
    assert [s for s, _ in logged] == [1, 2] and [v for _, v in logged] == pytest.approx(
        [v for _, v in losses], rel=1e-6
    )


def test_the_start_prompt_keeps_one_metric_name_whatever_its_description():
    for text in ("", "untrained (random)", "start: run /runs/first"):
        assert metrics_of(Evaluation(3, "untrained", 4.0, 0.5, 8, None, text)) == {
            "eval/untrained/test_loss": 4.0,
            "eval/untrained/accuracy": 0.5,
        }
