"""A run folder cannot be turned against its user: nothing promptgrad writes there follows a link someone
planted, nothing it opens blocks on a FIFO, and asking whether a run is live never gets in a writer's way."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest
from helpers import logged, one_line_error

from promptgrad.cli.main import main
from promptgrad.errors import UserError
from promptgrad.events import Started, Step
from promptgrad.store.run_folder import EventFollower, RunFolder, is_locked, list_runs, read_events, summarize
from promptgrad.train.loop import train

VICTIM_TEXT = "a file of the user's, outside the run folder\n" * 300


@pytest.fixture()
def victim(tmp_path) -> Path:
    path = tmp_path / "victim.txt"
    path.write_text(VICTIM_TEXT)
    return path


def within(seconds: float, call, *args):
    """call(*args) in a thread; fail (instead of hanging the suite) if it has not returned in time."""
    result: dict = {}

    def target():
        try:
            result["value"] = call(*args)
        except BaseException as e:  # noqa: BLE001 (handed back to the test)
            result["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{getattr(call, '__name__', call)} blocked for over {seconds} s"
    if "error" in result:
        raise result["error"]
    return result.get("value")


@pytest.mark.parametrize("name", [".lock", "metrics.jsonl", "config.toml", "checkpoint.pt", "prompt.safetensors"])
def test_resume_never_writes_through_a_planted_symlink(stopped_run, victim, capsys, name):
    """The issue's reproduction: cp -r, rm the file, ln -s victim in its place, train --resume."""
    copy = stopped_run.with_name("lk")
    shutil.copytree(stopped_run, copy)
    (copy / name).unlink()
    (copy / name).symlink_to(victim)
    line = one_line_error(capsys, main(["train", "--resume", str(copy)]), "symbolic link")
    assert str(copy / name) in line
    assert victim.read_text() == VICTIM_TEXT


def test_a_hard_link_to_another_file_is_not_written_in_place(stopped_run, victim, capsys):
    (stopped_run / "metrics.jsonl").unlink()
    os.link(victim, stopped_run / "metrics.jsonl")
    one_line_error(capsys, main(["train", "--resume", str(stopped_run)]), "hard link")
    assert victim.read_text() == VICTIM_TEXT


def test_a_bugs_traceback_is_not_written_through_a_symlink(tiny_config, victim, monkeypatch, capsys):
    import promptgrad.train.loop

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    run = Path(tiny_config.machine.runs_dir) / "tb"
    real_create = RunFolder.create

    def create_with_planted_link(runs_dir, name):
        folder = real_create(runs_dir, name)
        (folder.path / "traceback.txt").symlink_to(victim)
        return folder

    monkeypatch.setattr(RunFolder, "create", staticmethod(create_with_planted_link))
    monkeypatch.setattr(promptgrad.train.loop, "predictions", broken)
    events = logged(train(tiny_config.replace(name="tb")))
    assert events[-1].kind == "failed" and "a bug" in events[-1].message and "traceback in" not in events[-1].message
    assert victim.read_text() == VICTIM_TEXT and (run / "traceback.txt").is_symlink()


@pytest.mark.parametrize("name", [".lock", "metrics.jsonl", "config.toml", "checkpoint.pt"])
def test_a_fifo_in_a_run_folder_blocks_nothing(stopped_run, capsys, name):
    (stopped_run / name).unlink()
    os.mkfifo(stopped_run / name)
    summary = within(10, summarize, stopped_run)
    assert summary.state == "damaged" and "FIFO" in summary.problem
    assert [r.state for r in within(10, list_runs, stopped_run.parent)] == ["damaged"]
    code = within(20, main, ["train", "--resume", str(stopped_run)])
    one_line_error(capsys, code, "FIFO")


def test_eval_and_nearest_refuse_a_planted_prompt_link(stopped_run, victim, capsys):
    (stopped_run / "prompt.safetensors").unlink()
    (stopped_run / "prompt.safetensors").symlink_to(victim)
    for command in (["eval", str(stopped_run)], ["nearest", str(stopped_run)]):
        one_line_error(capsys, main(command), "symbolic link")


def test_asking_whether_a_run_is_live_never_takes_its_lock(stopped_run):
    """The TUI asks every second; a writer starting at that moment must never be refused (with a lock
    test that takes the lock, a harness saw 319 refusals in 2,000 tries)."""
    stop = threading.Event()
    asked = []

    def ask():
        while not stop.is_set():
            asked.append(is_locked(stopped_run))

    asker = threading.Thread(target=ask)
    asker.start()
    refused = 0
    try:
        for _ in range(2000):
            folder = RunFolder.open(stopped_run)
            try:
                folder.lock()
            except UserError:
                refused += 1
            folder.release()
    finally:
        stop.set()
        asker.join()
    assert refused == 0 and len(asked) > 100
    folder = RunFolder.open_for_writing(stopped_run)
    try:
        assert is_locked(stopped_run)
        with pytest.raises(UserError, match="is being written by process"):
            RunFolder.open_for_writing(stopped_run)
    finally:
        folder.release()
    assert not is_locked(stopped_run)


def test_the_follower_notices_a_resume_that_cuts_the_file_back_and_regrows_it(stopped_run):
    """Between two looks, a resume cuts metrics.jsonl back to its checkpoint and writes more than was cut:
    the follower must start again, and so see the resume's `started` record."""
    follower = EventFollower(stopped_run / "metrics.jsonl")
    first, bad, reset = follower.poll()
    assert first and not bad and not reset
    assert follower.poll() == ([], [], False)
    metrics = stopped_run / "metrics.jsonl"
    size_before = metrics.stat().st_size
    lines = metrics.read_bytes().splitlines(keepends=True)
    checkpoint = max(i for i, line in enumerate(lines) if json.loads(line)["event"] == "checkpoint")
    kept = b"".join(lines[: checkpoint - 3])  # as if the checkpoint had come three records earlier
    resumed = [Started("x", "m", "cpu", "fp32", 1, 1, 6, 2, 3)] + [
        Step(s, 0.1, 1.0, 0.01, 1.0, 1.0, 1.0) for s in range(3, 40)
    ]
    metrics.write_bytes(kept + b"".join(RunFolder.encoded(e) for e in resumed))
    assert metrics.stat().st_size > size_before
    events, bad, reset = follower.poll()
    assert reset and not bad
    assert [e.kind for e in events].count("started") == 2  # the original one, read again, and the resume's
    assert events[-len(resumed) :] == resumed


def test_damaged_lines_are_skipped_and_named_once(stopped_run):
    metrics = stopped_run / "metrics.jsonl"
    lines = metrics.read_text().splitlines(keepends=True)
    records = [json.loads(line) for line in lines]
    wrong = {
        "evaluation": ("test_loss", "low"),
        "step": ("loss", "0.5"),
        "nearest_tokens": ("positions", "none"),
        "predictions": ("rows", [{"x": 1}]),
    }
    damaged = []
    for i, record in enumerate(records):
        if record["event"] in wrong:
            key, value = wrong.pop(record["event"])
            lines[i] = json.dumps({**record, key: value}) + "\n"
            damaged.append(i + 1)
    assert not wrong  # each kind was damaged once
    metrics.write_text("".join(lines))
    events, bad = read_events(metrics)
    assert bad == damaged and len(events) == len(lines) - len(damaged)
    follower = EventFollower(metrics)
    assert follower.poll()[1] == damaged and follower.poll()[1] == []
    summary = summarize(stopped_run)
    assert summary.state == "stopped" and "lines" in summary.problem


def test_a_config_that_is_not_utf8_is_one_line_everywhere(stopped_run, capsys):
    (stopped_run / "config.toml").write_bytes(b'model = "\xff\xfe"\n')
    for command in (["train", "--resume", str(stopped_run)], ["eval", str(stopped_run)], ["nearest", str(stopped_run)]):
        one_line_error(capsys, main(command), "not UTF-8")
    assert summarize(stopped_run).state == "damaged"
