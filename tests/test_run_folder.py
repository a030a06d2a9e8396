"""A run folder is safe to open and hard to damage: checkpoints are data only, damaged files and a full
disk are one line each, a bug keeps its traceback, and resume cuts metrics.jsonl back to one history."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from helpers import Payload, logged, one_line_error

from promptgrad.cli.main import main
from promptgrad.errors import UserError
from promptgrad.events import Finished
from promptgrad.store.run_folder import RunFolder
from promptgrad.train.loop import train


def test_a_pickle_payload_in_a_checkpoint_never_runs(stopped_run, tmp_path, capsys):
    marker = tmp_path / "pwned"
    state = torch.load(stopped_run / "checkpoint.pt", weights_only=True)
    torch.save({**state, "rng": Payload(marker)}, stopped_run / "checkpoint.pt")
    one_line_error(capsys, main(["train", "--resume", str(stopped_run)]), "holds more than tensors and plain data")
    assert main(["eval", str(stopped_run)]) == 0  # eval reads the prompt (safetensors), never the checkpoint
    assert not marker.exists()


def test_a_damaged_checkpoint_or_prompt_is_one_line(stopped_run, capsys):
    checkpoint = stopped_run / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:200])
    one_line_error(capsys, main(["train", "--resume", str(stopped_run)]), "checkpoint.pt is damaged")
    prompt = stopped_run / "prompt.safetensors"
    prompt.write_bytes(prompt.read_bytes()[:-40])
    for command in (["eval", str(stopped_run)], ["nearest", str(stopped_run)], ["predict", str(stopped_run), "hot"]):
        one_line_error(capsys, main(command), "prompt.safetensors is damaged")


def test_a_full_disk_is_one_line_and_leaves_no_temporary_file(stopped_run, capsys, monkeypatch):
    # the checkpoint's temporary file is made as usual, but written through a descriptor of the kernel's
    # /dev/full: writing it fails with ENOSPC, for real
    from promptgrad.files import Folder

    made, fresh_file = [], Folder.fresh_file

    def onto_dev_full(self, prefix):
        name, fd = fresh_file(self, prefix)
        os.close(fd)
        made.append(self.path / name)
        return name, os.open("/dev/full", os.O_WRONLY)

    monkeypatch.setattr(Folder, "fresh_file", onto_dev_full)
    before = (stopped_run / "checkpoint.pt").read_bytes()
    one_line_error(capsys, main(["train", "--resume", str(stopped_run)]), "no space left on the device")
    assert made and not any(p.exists() for p in made)
    assert not [p.name for p in stopped_run.iterdir() if ".tmp" in p.name]
    assert (stopped_run / "checkpoint.pt").read_bytes() == before  # the last good checkpoint is intact


def test_a_bug_keeps_its_traceback_in_the_run_folder(tiny_config, monkeypatch, capsys):
    def broken(*args, **kwargs):
        return [][0]  # an IndexError deep in a readout

    monkeypatch.setattr("promptgrad.train.loop.nearest_tokens", broken)
    code = main(["train", "--config", str(save(tiny_config, "bug")), "--name", "bug"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "IndexError" in err[0] and "traceback.txt" in err[0], err
    text = (Path(tiny_config.machine.runs_dir) / "bug" / "traceback.txt").read_text()
    assert "Traceback (most recent call last)" in text and "in broken" in text
    failed = RunFolder.open(Path(tiny_config.machine.runs_dir) / "bug").events()[-1]
    assert failed.kind == "failed" and not failed.user_error and "in broken" in failed.traceback


def save(config, name: str) -> Path:
    path = Path(config.machine.runs_dir).parent / f"{name}.toml"
    config.replace(name=name).save(path)
    return path


def test_resume_cuts_metrics_back_to_the_checkpoint_and_to_whole_lines(stopped_run):
    metrics = stopped_run / "metrics.jsonl"
    text = metrics.read_text()
    # what a kill -9 can leave: events past the checkpoint, the last one cut off mid-line
    metrics.write_text(
        text
        + json.dumps(
            {
                "event": "step",
                "step": 4,
                "epoch": 0.8,
                "loss": 1.0,
                "lr": 0.01,
                "examples_per_s": 1.0,
                "elapsed_s": 1.0,
                "eta_s": 1.0,
            }
        )
        + "\n"
        + '{"event": "st'
    )
    events = logged(train(RunFolder.open(stopped_run).config(), resume=stopped_run))
    assert isinstance(events[-1], Finished) and not events[-1].stopped
    lines = metrics.read_text().splitlines()
    kinds = [json.loads(line)["event"] for line in lines]  # every line whole
    steps = [json.loads(line)["step"] for line in lines if json.loads(line)["event"] == "step"]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert kinds.count("finished") == 1 and kinds.count("started") == 2


def test_a_stray_lock_file_without_a_process_does_not_block(stopped_run):
    (stopped_run / ".lock").write_text("process 999999 (gone)")  # a kill -9 leaves the file, not the lock
    events = logged(train(RunFolder.open(stopped_run).config(), resume=stopped_run))
    assert isinstance(events[-1], Finished) and not events[-1].stopped


def test_a_failed_start_leaves_no_empty_folder(tiny_config):
    events = list(train(tiny_config.replace(name="nodata", data="/nonexistent/pairs.jsonl")))
    assert events[-1].kind == "failed" and events[-1].user_error
    assert not (Path(tiny_config.machine.runs_dir) / "nodata").exists()


def test_load_prompt_refuses_non_finite_values(tmp_path):
    from safetensors.torch import save_file

    from promptgrad.store.run_folder import load_prompt

    save_file({"prompt": torch.tensor([[1.0, float("nan")]])}, str(tmp_path / "prompt.safetensors"))
    with pytest.raises(UserError, match="non-finite"):
        load_prompt(tmp_path / "prompt.safetensors")


def test_checkpoints_also_come_on_a_time_interval(tiny_config):
    from promptgrad.events import Checkpoint

    events = logged(train(tiny_config.replace(name="timed", checkpoint_every=0, eval_every=0, checkpoint_minutes=1e-9)))
    # every step outlasts a nanosecond-scale interval: a checkpoint after each, and the final one
    assert [e.step for e in events if isinstance(e, Checkpoint)] == [1, 2, 3, 4, 5, 6]
