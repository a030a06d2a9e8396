"""A run folder, `runs/<name>/`: everything needed to trace, resume, view or reuse a run.

    config.toml          the resolved TrainConfig (precision as decided, never "auto")
    metrics.jsonl        one JSON object per event, flushed as it goes (readable while being written)
    checkpoint.pt        the learner's state, RNG state, step and schedule, for resume (written atomically)
    prompt.safetensors   tensor `prompt` [prompt_len, hidden] float32 with string metadata
                         `model`, `template`, `prompt_len`, `precision` (and `hard_prompt_ids`/
                         `hard_prompt_text` for discrete prompts)
    traceback.txt        only after a failure that was a bug: the full traceback
    .lock                held (flock) by the one process writing the folder

Opening a folder never executes code from it: checkpoints are read with `weights_only=True` (tensors
and plain data only), prompts are safetensors, the config is TOML. A writer holds an advisory lock
that the OS releases when the process ends, however it ends, so a kill -9 leaves no stale lock.
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import pickle
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from promptgrad.config import TrainConfig
from promptgrad.errors import UserError
from promptgrad.events import Event, event_from_json

CONFIG, METRICS, CHECKPOINT, PROMPT = "config.toml", "metrics.jsonl", "checkpoint.pt", "prompt.safetensors"
TRACEBACK, LOCK = "traceback.txt", ".lock"


def no_space(path: Path) -> UserError:
    return UserError(f"no space left on the device holding {path.parent}: {path.name} was not written; "
                     f"free some space, then resume the run from its last checkpoint")


def atomic_write(path: Path, data: bytes) -> None:
    """Write through a temporary file, fsync and rename, so a crash or a full disk never leaves a
    half-written file (and no temporary file is left behind either)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise no_space(path) from None
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None


def lock_holder(lock: Path) -> str:
    try:
        return lock.read_text().strip() or "another process"
    except OSError:
        return "another process"


@dataclass
class RunFolder:
    """A run folder. Reading needs nothing; writing needs `lock()` (create() and open_for_writing() take it)."""

    path: Path
    _lock_fd: int | None = field(default=None, repr=False, compare=False)
    _metrics: Any = field(default=None, repr=False, compare=False)

    @staticmethod
    def create(runs_dir: str | Path, name: str) -> RunFolder:
        """A new folder, locked for writing; its config is written once the run has resolved it."""
        path = Path(runs_dir) / name
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot make run folder {path}: {e.strerror or e}", "runs_dir") from None
        run = RunFolder(path)
        run.lock()
        if (path / CONFIG).exists():
            run.release()
            raise UserError(f"run folder {path} already exists; resume it, or pick another name", "name")
        return run

    @staticmethod
    def open(path: str | Path) -> RunFolder:
        path = Path(path)
        if not (path / CONFIG).is_file():
            raise UserError(f"{path} is not a run folder (it has no {CONFIG}); give a folder under runs/ made by promptgrad train")
        return RunFolder(path)

    @staticmethod
    def open_for_writing(path: str | Path) -> RunFolder:
        run = RunFolder.open(path)
        run.lock()
        return run

    # ---- the one-writer lock ----------------------------------------------------------------
    def lock(self) -> None:
        lock = self.path / LOCK
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(f"run folder {self.path} is being written by {lock_holder(lock)}; wait for it to end or stop it "
                            f"(kill -TERM stops it cleanly), or pick another name", "name") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()} ({' '.join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv))[:120]})".encode())
        self._lock_fd = fd

    def release(self) -> None:
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def remove_if_unused(self) -> None:
        """A folder made for a run that failed before writing its config holds only the lock: remove it."""
        try:
            if {p.name for p in self.path.iterdir()} <= {LOCK}:
                (self.path / LOCK).unlink(missing_ok=True)
                self.path.rmdir()
        except OSError:
            pass

    @property
    def writable(self) -> bool:
        return self._lock_fd is not None

    # ---- config -----------------------------------------------------------------------------
    def config(self) -> TrainConfig:
        return TrainConfig.load(self.path / CONFIG)

    def save_config(self, config: TrainConfig) -> None:
        atomic_write(self.path / CONFIG, config.dumps().encode())

    # ---- metrics ----------------------------------------------------------------------------
    def append(self, event: Event) -> None:
        if self._metrics is None:
            path = self.path / METRICS
            # a file cut off mid-line (kill -9 while writing) gets its line ended before ours
            ragged = path.exists() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
            self._metrics = open(path, "a")
            if ragged:
                self._metrics.write("\n")
        try:
            self._metrics.write(json.dumps(event.to_json()) + "\n")
            self._metrics.flush()  # readers (the TUI following a run) see each event as it happens
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise no_space(self.path / METRICS) from None
            raise

    def metrics_size(self) -> int:
        """Bytes of metrics.jsonl written so far, made durable: a checkpoint records it, and resume cuts
        the file back to it, so every reader sees one history with each step once."""
        if self._metrics is None:
            return (self.path / METRICS).stat().st_size if (self.path / METRICS).exists() else 0
        self._metrics.flush()
        os.fsync(self._metrics.fileno())
        return self._metrics.tell()

    def truncate_metrics(self, size: int | None, step: int) -> None:
        """Cut metrics.jsonl back to what it held when the checkpoint of `step` was written: to `size`
        bytes when the checkpoint recorded it, else (older checkpoints) after the last line of `step`'s
        checkpoint event; either way to a whole line."""
        path = self.path / METRICS
        if not path.exists():
            return
        data = path.read_bytes()
        if size is None:
            size, offset = 0, 0
            for line in data.splitlines(keepends=True):
                offset += len(line)
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(obj, dict) and obj.get("event") == "checkpoint" and obj.get("step") == step:
                    size = offset
        size = min(size, len(data))
        size = data.rfind(b"\n", 0, size) + 1  # never keep a partial line
        if size < len(data):
            with open(path, "r+b") as f:
                f.truncate(size)

    def events(self) -> list[Event]:
        """The events written so far; a line that is not an event (still being written, damaged) is skipped."""
        if not (self.path / METRICS).exists():
            return []
        out = []
        for line in (self.path / METRICS).read_text(errors="replace").splitlines():
            try:
                out.append(event_from_json(json.loads(line)))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
                continue
        return out

    # ---- checkpoint -------------------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any]) -> Path:
        buffer = io.BytesIO()
        torch.save(state, buffer)  # serialised in memory first, so a full disk is an OSError we can name
        atomic_write(self.path / CHECKPOINT, buffer.getvalue())
        return self.path / CHECKPOINT

    def load_checkpoint(self) -> dict[str, Any]:
        return load_checkpoint(self.path / CHECKPOINT)

    # ---- the learned prompt -----------------------------------------------------------------
    def save_prompt(self, prompt: torch.Tensor, metadata: dict[str, str]) -> Path:
        tensor = prompt.detach().float().cpu().contiguous()
        atomic_write(self.path / PROMPT, save_safetensors({"prompt": tensor}, metadata=metadata))
        return self.path / PROMPT

    def load_prompt(self) -> tuple[torch.Tensor, dict[str, str]]:
        return load_prompt(self.path / PROMPT)

    # ---- failures ---------------------------------------------------------------------------
    def save_traceback(self, text: str) -> Path:
        """Append a bug's traceback (a folder keeps every failure it saw, newest last)."""
        path = self.path / TRACEBACK
        with open(path, "a") as f:
            f.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} process {os.getpid()}\n{text}\n")
        return path


@dataclass(frozen=True)
class RunSummary:
    """One line about a run folder, read from its files without loading any model."""

    path: Path
    name: str
    state: str  # running | finished | stopped | failed | started | empty
    step: int
    total_steps: int
    best_test_loss: float | None
    final_test_loss: float | None  # on the whole test set, once finished
    model: str
    mode: str
    modified: float  # seconds since the epoch, of metrics.jsonl (or config.toml)


def is_locked(path: Path) -> bool:
    """Is some process writing this run folder now?"""
    lock = path / LOCK
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock we may have taken
    return False


def summarize(path: Path) -> RunSummary:
    run = RunFolder.open(path)
    try:
        config = run.config()
        model, mode = config.model, config.mode
    except UserError:
        model, mode = "?", "?"
    state, step, total, best, final = "empty", 0, 0, None, None
    for event in run.events():
        kind = event.kind
        if kind == "started":
            state, total, step = "started", event.total_steps, event.start_step
        elif kind == "step":
            step = event.step
        elif kind == "extended":
            total = event.total_steps
        elif kind == "evaluation" and event.prompt == "learned":
            best = event.best_test_loss
        elif kind == "finished":
            state, step = ("stopped" if event.stopped else "finished"), event.step
            final = event.test_loss
        elif kind == "failed":
            state = "failed"
    if is_locked(run.path):
        state = "running"
    metrics = run.path / METRICS
    modified = (metrics if metrics.exists() else run.path / CONFIG).stat().st_mtime
    return RunSummary(run.path, run.path.name, state, step, total, best, final, model, mode, modified)


def list_runs(runs_dir: str | Path) -> list[RunSummary]:
    """Every run folder under `runs_dir`, newest first."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    runs = [summarize(p) for p in root.iterdir() if (p / CONFIG).is_file()]
    return sorted(runs, key=lambda r: r.modified, reverse=True)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's state, on the CPU whatever device wrote it; plain data only, never code."""
    if not path.is_file():
        raise UserError(f"run folder {path.parent} has no {path.name} to resume from; start a new run instead")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(f"{path} holds more than tensors and plain data (a checkpoint promptgrad writes never does), "
                        f"so it was not loaded; it may have been tampered with") from None
    except Exception as e:  # a truncated or overwritten file fails in many ways inside torch and zipfile
        raise UserError(f"{path} is damaged and cannot be read ({type(e).__name__}); start a new run, from its prompt "
                        f"with init run:{path.parent} if prompt.safetensors is intact") from None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int) or "rng" not in state:
        raise UserError(f"{path} is not a promptgrad checkpoint (no step and RNG state in it)")
    return state


def load_prompt(path: str | Path) -> tuple[torch.Tensor, dict[str, str]]:
    """The prompt tensor [prompt_len, hidden] and its metadata, checked to be whole and finite."""
    path = Path(path)
    if path.is_dir():
        path = path / PROMPT
    if not path.is_file():
        raise UserError(f"{path} does not exist; the run has not saved a prompt yet (it writes one at each checkpoint)")
    data = path.read_bytes()
    try:
        tensors = load_safetensors(data)
        metadata = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")]).get("__metadata__") or {}
    except (SafetensorError, ValueError, json.JSONDecodeError) as e:
        raise UserError(f"{path} is damaged and cannot be read ({str(e).splitlines()[0][:80] if str(e) else type(e).__name__})") from None
    prompt = tensors.get("prompt")
    if prompt is None or prompt.dim() != 2 or not prompt.is_floating_point():
        raise UserError(f"{path} holds no 2-D float tensor named 'prompt'; it is not a promptgrad prompt")
    if not torch.isfinite(prompt).all():
        raise UserError(f"{path} holds non-finite values (NaN or inf); it is not a usable prompt")
    return prompt, metadata
