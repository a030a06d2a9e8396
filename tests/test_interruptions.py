"""Interruptions lose little: a run stopped by SIGTERM or SIGHUP (the CLI, and promptgrad-tui on a
terminal that hangs up) or killed with SIGKILL, then resumed, ends with exactly the prompt of an
uninterrupted run (bit for bit: CPU, fp32) and a metrics.jsonl that holds every step once; and one
process writes a run folder at a time."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest
import torch

from promptgrad.cli.main import main
from promptgrad.store.run_folder import RunFolder

ENTRY = str(Path(__file__).with_name("slow_entry.py"))
STEPS = 8


@pytest.fixture(scope="module")
def run_config(tiny_gpt2, tmp_path_factory) -> Path:
    """The settings every run here shares: 8 steps, a checkpoint every 3, fp32 on the CPU."""
    from helpers import TINY_PAIRS

    from promptgrad.config import TrainConfig

    folder = tmp_path_factory.mktemp("interruptions")
    data = folder / "pairs.jsonl"
    data.write_text("".join(json.dumps({"x": x, "y": y}) + "\n" for x, y in TINY_PAIRS))
    path = folder / "run.toml"
    TrainConfig(
        task="antonyms",
        model=tiny_gpt2,
        data=str(data),
        steps=STEPS,
        batch_size=4,
        eval_every=0,
        eval_size=4,
        checkpoint_every=3,
        num_predictions=1,
        nearest_k=2,
        lr=1e-2,
        precision="fp32",
        device="cpu",
        runs_dir=str(folder / "runs"),
    ).save(path)
    return path


def runs_dir(run_config: Path) -> Path:
    return run_config.parent / "runs"


def hangup_as_a_terminal_sends_it() -> None:
    """In a child: SIGHUP back to its default. Under `nohup make test` the children would inherit it
    ignored, and a run rightly leaves it so (nohup asks for that), so the hang-up tests would test nohup."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def cli(run_config: Path, name: str, slow: float) -> subprocess.Popen:
    env = {**os.environ, "SLOW_STEP_SECONDS": str(slow), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, ENTRY, "cli", "train", "--config", str(run_config), "--name", name],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=hangup_as_a_terminal_sends_it,
    )


def resume(run: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SLOW_STEP_SECONDS": "0", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, ENTRY, "cli", "train", "--resume", str(run)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def logged(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_for_step(run: Path, step: int, alive, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if any(e["event"] == "step" and e["step"] >= step for e in logged(run)):
                return
        except json.JSONDecodeError:
            pass  # a line being written
        assert alive(), "the run ended before it was interrupted"
        time.sleep(0.05)
    raise AssertionError(f"no step {step} within {timeout} s")


@pytest.fixture(scope="module")
def uninterrupted(run_config) -> Path:
    done = cli(run_config, "straight", slow=0)
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err[-2000:]
    return runs_dir(run_config) / "straight"


def assert_same_as_uninterrupted(run: Path, uninterrupted: Path) -> None:
    events = logged(run)
    steps = [e["step"] for e in events if e["event"] == "step"]
    assert steps == list(range(1, STEPS + 1)), steps  # every step once, in order
    finished = [e for e in events if e["event"] == "finished"]
    assert len(finished) == 1 and not finished[0]["stopped"], finished  # the stop's record was cut with the rest
    a, _ = RunFolder.open(run).load_prompt()
    b, _ = RunFolder.open(uninterrupted).load_prompt()
    assert torch.equal(a, b), (a - b).abs().max()
    assert finished[0]["test_loss"] == [e for e in logged(uninterrupted) if e["event"] == "finished"][0]["test_loss"]


@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP", "SIGKILL"])
def test_cli_interrupted_then_resumed_ends_as_if_never_interrupted(run_config, uninterrupted, how, capsys):
    name = f"cli-{how.lower()}"
    run = runs_dir(run_config) / name
    process = cli(run_config, name, slow=0.3)
    wait_for_step(run, 4, lambda: process.poll() is None)  # past the checkpoint at step 3
    if how == "SIGKILL":  # while it runs, the folder is its alone: a second writer gets one line naming it
        capsys.readouterr()
        assert main(["train", "--config", str(run_config), "--name", name]) == 2
        assert main(["train", "--resume", str(run)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 2 and all(f"is being written by process {process.pid}" in line for line in err), err
    process.send_signal(getattr(signal, how))
    out, err = process.communicate(timeout=120)
    if how == "SIGKILL":
        assert process.returncode == -signal.SIGKILL
    else:  # a clean stop: the step finished, a checkpoint written, the run says so
        assert process.returncode == 0, err[-2000:]
        assert f"{how}" in err and "stopped at step" in out, (out, err)
        last = logged(run)[-1]
        assert last["event"] == "finished" and last["stopped"] and 4 <= last["step"] < STEPS, last
    resumed = resume(run)  # no stale lock after a kill -9: the OS released it
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_as_uninterrupted(run, uninterrupted)


def process_gone(pid: int) -> bool:
    """True once `pid` has exited (it is not our child, so a zombie counts as gone)."""
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, IndexError):
        return True


def test_tui_stops_cleanly_when_its_terminal_hangs_up(run_config, uninterrupted):
    """promptgrad-tui on a pseudo-terminal under a shell, as in tmux or over SSH: ctrl+r starts the run;
    then the terminal goes away: the master side closes, the shell (the session leader) dies of its
    SIGHUP, and the kernel hangs the terminal up for the app too (its writes then fail with EIO, and
    it no longer even reads as a terminal) and sends it SIGHUP and SIGCONT."""
    name = "tui-hangup"
    run = runs_dir(run_config) / name
    config = run_config.with_name("tui.toml")
    config.write_text(run_config.read_text().replace('name = ""', f'name = "{name}"'))
    pid, fd = pty.fork()
    if pid == 0:  # the child: a shell on the pseudo-terminal, running the app
        os.environ.update(SLOW_STEP_SECONDS="0.3", OMP_NUM_THREADS="1", TERM="xterm-256color")
        hangup_as_a_terminal_sends_it()
        os.execv("/bin/sh", ["sh", "-c", f"'{sys.executable}' '{ENTRY}' tui --config '{config}'; exit $?"])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    screen = bytearray()

    def drain():  # a terminal that is not read blocks the app's writes
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                return
            if not data:
                return
            screen.extend(data)

    threading.Thread(target=drain, daemon=True).start()
    app = None
    try:
        deadline = time.monotonic() + 60
        while b"Configuration" not in screen and time.monotonic() < deadline:
            time.sleep(0.1)
        assert b"Configuration" in screen, "the app did not draw"
        os.write(fd, b"\x12")  # ctrl+r
        wait_for_step(run, 4, lambda: os.waitpid(pid, os.WNOHANG) == (0, 0))
        app = int((run / ".lock").read_text().split()[1])  # "process PID (...)": the app, the shell's child
        os.close(fd)  # the terminal goes away
        deadline = time.monotonic() + 60
        while not process_gone(app) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert process_gone(app), "the app did not exit after its terminal hung up"
    finally:
        if app and not process_gone(app):
            os.kill(app, signal.SIGKILL)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
    last = logged(run)[-1]
    assert last["event"] == "finished" and last["stopped"] and 4 <= last["step"] < STEPS, last
    resumed = resume(run)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_as_uninterrupted(run, uninterrupted)
