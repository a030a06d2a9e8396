"""A run folder, `runs/<name>/`: everything needed to trace, resume, view or reuse a run.

    config.toml          the resolved TrainConfig, settings as given (precision may be "auto": facts.json has what it became)
    facts.json           the precision decided, and which data exactly the run split: its source, pair count and hash
    split.jsonl          which pairs were trained on, held out for validation, tested ({"x", "y", "side"} a line)
    metrics.jsonl        one JSON object per event, flushed as it goes (readable while being written)
    checkpoint.pt        the learner's state, RNG state, step and schedule, for resume (written atomically)
    prompt.safetensors   tensor `prompt` [prompt_len, hidden] float32 with string metadata `model`,
                         `model_source`, `template`, `prompt_len`, `baseline_text`, `init`, `task`, `data`,
                         `data_sha256`, `step`, `mode` (train/loop.py's prompt_metadata; and `hard_prompt_ids`/
                         `hard_prompt_text` for discrete prompts)
    pair_scores.jsonl    each test pair's answer, rightness and loss under every prompt, at the final scoring
    traceback.txt        only after a failure that was a bug: the full traceback
    .lock                locked (an OFD lock) by the one process writing the folder

Opening a folder never executes code from it: checkpoints are read with `weights_only=True` (tensors
and plain data only), prompts are safetensors, the config is TOML. Nothing in it is read or written
through a symbolic link, a hard link to another file, a FIFO or a device (files.py). A writer opens the
folder itself once, never through a link (a run folder replaced by a link to a folder elsewhere is
refused), and writes, replaces and removes its files only through that descriptor (files.Folder). A
writer holds an advisory lock that the OS releases when the process ends, however it ends, so a kill -9
leaves no stale lock.
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import pickle
import stat
import struct
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from promptgrad.config import TrainConfig
from promptgrad.errors import UserError
from promptgrad.events import Event, event_from_json
from promptgrad.files import READ_WRITE, Folder, kind_of, no_space, not_regular, open_regular, read_bytes, read_text
from promptgrad.numbers import DamagedNumber, read_int
from promptgrad.problem.pairs import Pair, Split
from promptgrad.store.run_facts import FACTS, RunFacts

CONFIG, METRICS, CHECKPOINT, PROMPT = "config.toml", "metrics.jsonl", "checkpoint.pt", "prompt.safetensors"
TRACEBACK, LOCK, SPLIT = "traceback.txt", ".lock", "split.jsonl"
PAIR_SCORES = "pair_scores.jsonl"
# a folder holding this file is a sweep (experiments/sweep.py writes it): storage lists a sweep's runs without knowing sweeps
SWEEP_SPEC = "sweep.toml"
FILES = (
    CONFIG,
    METRICS,
    CHECKPOINT,
    PROMPT,
    TRACEBACK,
    LOCK,
    FACTS,
    SPLIT,
    PAIR_SCORES,
)  # all that promptgrad reads or writes in a run folder


def whole_file_lock(kind: int) -> bytes:
    """A `struct flock` over the whole file (l_type, l_whence, l_start, l_len, l_pid; pid 0 for OFD locks)."""
    return struct.pack("@hhqqi4x", kind, os.SEEK_SET, 0, 0, 0)


def lock_holder(lock: Path) -> str:
    try:
        return read_text(lock).strip()[:200] or "another process"
    except (OSError, UserError):
        return "another process"


def is_regular(path: Path) -> bool:
    """Is there a regular file at `path` itself (a link to one does not count)?"""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


@dataclass
class RunFolder:
    """A run folder. Reading needs nothing; writing needs the folder opened as a descriptor and `lock()`
    (create() and open_for_writing() do both)."""

    path: Path
    _folder: Folder | None = field(default=None, repr=False, compare=False)  # a writer's: every write goes through it
    _lock_fd: int | None = field(default=None, repr=False, compare=False)
    _metrics: Any = field(default=None, repr=False, compare=False)

    @staticmethod
    def create(runs_dir: str | Path, name: str) -> RunFolder:
        """A new folder, locked for writing; its config is written once the run has resolved it. runs_dir
        is the user's (made if missing, a link in it followed); the run folder in it is never a link."""
        path = Path(runs_dir) / name
        field_at_fault = "runs_dir"  # which setting a refusal points at (the TUI's form marks it)
        try:
            with Folder.at(runs_dir, create=True) as parent:
                field_at_fault = "name"
                folder = parent.sub(name, create=True)
        except UserError as e:
            raise UserError(str(e), field_at_fault) from None
        except OSError as e:
            raise UserError(f"cannot make run folder {path}: {e.strerror or e}", field_at_fault) from None
        run = RunFolder(path, folder)
        try:
            run.lock()
        except BaseException:
            folder.close()
            raise
        if folder.exists(CONFIG):
            run.release()
            raise UserError(f"run folder {path} already exists; resume it, or pick another name", "name")
        return run

    @staticmethod
    def open(path: str | Path) -> RunFolder:
        """A folder made by promptgrad train, its files checked to be what they should be: a link or a
        special file planted in place of one is refused at once, before anything reads or writes it."""
        path = Path(path)
        if "\x00" in str(path):
            raise UserError(
                f"run folder {str(path)!r} holds a NUL byte (\\x00), which no file name may hold; remove it"
            )
        if not os.path.lexists(path / CONFIG):
            raise UserError(
                f"{path} is not a run folder (it has no {CONFIG}); give a folder under runs/ made by promptgrad train"
            )
        for name in FILES:
            try:
                mode = os.lstat(path / name).st_mode
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(mode):
                raise not_regular(path / name, "a symbolic link" if stat.S_ISLNK(mode) else kind_of(mode))
        return RunFolder(path)

    @staticmethod
    def open_for_writing(path: str | Path, within: Folder | None = None) -> RunFolder:
        """The folder opened to be written: itself never through a link (the path above it is the user's,
        or `within`, the sweep folder's descriptor, when given), its files checked through that descriptor."""
        path = Path(path)
        RunFolder.open(path)  # its one-line refusals, in the words readers use
        try:
            folder = within.sub(path.name) if within is not None else Folder.at(path, link_ok=False)
        except FileNotFoundError:
            raise UserError(
                f"{path} is not a run folder (it does not exist); give a folder made by promptgrad train"
            ) from None
        run = RunFolder(path, folder)
        try:
            for name in FILES:  # again, through the descriptor: what was checked is what is written
                folder.check_not_link(name)
            if not folder.exists(CONFIG):
                raise UserError(
                    f"{path} is not a run folder (it has no {CONFIG}); give a folder made by promptgrad train"
                )
            run.lock()
        except BaseException:
            folder.close()
            raise
        return run

    @property
    def folder(self) -> Folder:
        """The descriptor every write goes through: the writer's, or opened now (never through a link)
        for a folder opened to be read that is then written (a test's, the lock of `lock()`)."""
        if self._folder is None:
            self._folder = Folder.at(self.path, link_ok=False)
        return self._folder

    # ---- the one-writer lock ----------------------------------------------------------------
    # An open-file-description lock (fcntl F_OFD_SETLK): the OS releases it when the writer ends however
    # it ends, and unlike flock it can be *tested* (F_OFD_GETLK) without taking it, so a viewer checking
    # it never makes a writer starting at that moment fail.
    def lock(self) -> None:
        lock = self.path / LOCK
        fd = self.folder.open_fd(LOCK, READ_WRITE)
        try:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, whole_file_lock(fcntl.F_WRLCK))
        except OSError:
            os.close(fd)
            raise UserError(
                f"run folder {self.path} is being written by {lock_holder(lock)}; wait for it to end or stop it "
                f"(kill -TERM stops it cleanly), or pick another name",
                "name",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(
            fd,
            f"process {os.getpid()} ({' '.join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv))[:120]})".encode(),
            0,
        )
        self._lock_fd = fd

    def release(self) -> None:
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the only descriptor of the open file releases the lock
            self._lock_fd = None
        if self._folder is not None:
            self._folder.close()
            self._folder = None

    def remove_if_unused(self) -> None:
        """A folder made for a run that failed before writing its config holds only the lock: remove it
        (the lock through the folder's descriptor; the folder itself only if still empty and no link)."""
        try:
            folder = self.folder
            if set(folder.listdir()) <= {LOCK}:
                folder.unlink(LOCK)
                os.rmdir(self.path)  # rmdir never follows a link, and removes only an empty folder
        except (OSError, UserError):
            pass
        finally:
            if self._lock_fd is None and self._folder is not None:  # released before: nothing else needs it
                self._folder.close()
                self._folder = None

    @property
    def writable(self) -> bool:
        return self._lock_fd is not None

    # ---- config -----------------------------------------------------------------------------
    def config(self) -> TrainConfig:
        return TrainConfig.load(self.path / CONFIG)

    def save_config(self, config: TrainConfig) -> None:
        self.folder.write_atomic(CONFIG, config.dumps().encode())

    # ---- metrics ----------------------------------------------------------------------------
    @staticmethod
    def encoded(event: Event) -> bytes:
        """The event's line in metrics.jsonl."""
        return (json.dumps(event.to_json()) + "\n").encode()

    def append(self, event: Event) -> None:
        if self._metrics is None:
            self._metrics = self.folder.open_append(METRICS)
            # a file cut off mid-line (kill -9 while writing) gets its line ended before ours
            size = os.fstat(self._metrics.fileno()).st_size
            if size and os.pread(self._metrics.fileno(), 1, size - 1) != b"\n":
                self._metrics.write(b"\n")
        try:
            self._metrics.write(self.encoded(event))
            self._metrics.flush()  # readers (the TUI following a run) see each event as it happens
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise no_space(self.path / METRICS) from None
            raise

    def metrics_size(self) -> int:
        """Bytes of metrics.jsonl written so far, made durable: a checkpoint records it, and resume cuts
        the file back to it, so every reader sees one history with each step once."""
        if self._metrics is None:
            try:
                return len(self.folder.read_bytes(METRICS))
            except FileNotFoundError:
                return 0
        self._metrics.flush()
        os.fsync(self._metrics.fileno())
        return os.fstat(self._metrics.fileno()).st_size

    def truncate_metrics(self, size: int) -> None:
        """Cut metrics.jsonl back to the `size` bytes it held when the checkpoint was written (to a whole
        line), so the resumed run writes on from there."""
        try:
            f = self.folder.open_update(METRICS)
        except FileNotFoundError:
            return
        with f:
            data = f.read()
            size = data.rfind(b"\n", 0, min(size, len(data))) + 1  # never keep a partial line
            if size < len(data):
                f.truncate(size)

    def events(self) -> list[Event]:
        """The events written so far; a line that is not a well-formed event (still being written,
        damaged) is skipped: `read_events` says which lines those were."""
        return read_events(self.path / METRICS)[0]

    # ---- checkpoint -------------------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any]) -> Path:
        buffer = io.BytesIO()
        torch.save(state, buffer)  # serialised in memory first, so a full disk is an OSError we can name
        self.folder.write_atomic(CHECKPOINT, buffer.getvalue())
        return self.path / CHECKPOINT

    def load_checkpoint(self) -> dict[str, Any]:
        return load_checkpoint(self.path / CHECKPOINT)

    # ---- the learned prompt -----------------------------------------------------------------
    def save_prompt(self, prompt: torch.Tensor, metadata: dict[str, str]) -> Path:
        tensor = prompt.detach().float().cpu().contiguous()
        self.folder.write_atomic(PROMPT, save_safetensors({"prompt": tensor}, metadata=metadata))
        return self.path / PROMPT

    def load_prompt(self) -> tuple[torch.Tensor, dict[str, str]]:
        return load_prompt(self.path / PROMPT)

    # ---- facts ------------------------------------------------------------------------------
    def save_facts(self, facts: RunFacts) -> None:
        self.folder.write_atomic(FACTS, facts.encoded())

    # ---- the split ----------------------------------------------------------------------------
    def save_split(self, split: Split) -> None:
        """Which pairs were trained on, which held out for validation and which tested, one JSON object a
        line ({"x", "y", "side"}), so a score can be reproduced outside promptgrad."""
        lines = [
            json.dumps({"x": p.x, "y": p.y, "side": side}, ensure_ascii=False) + "\n"
            for side, pairs in (("train", split.train), ("validation", split.validation), ("test", split.test))
            for p in pairs
        ]
        self.folder.write_atomic(SPLIT, "".join(lines).encode())

    def split(self) -> Split | None:
        """The split recorded when the run started, in its order (a folder written before validation
        splits has no "validation" lines: none); None for a folder from before split.jsonl."""
        try:
            text = read_text(self.path / SPLIT)
        except FileNotFoundError:
            return None
        sides: dict[str, list[Pair]] = {"train": [], "validation": [], "test": []}
        for number, line in enumerate(text.split("\n"), 1):  # not splitlines(): a pair may hold U+2028
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not (isinstance(row["x"], str) and isinstance(row["y"], str)):
                    raise TypeError
                sides[row["side"]].append(Pair(row["x"], row["y"]))
            except (ValueError, KeyError, TypeError):
                raise UserError(
                    f"{self.path / SPLIT} line {number} is not a recorded pair like "
                    f'{{"x": "hot", "y": "cold", "side": "train"}}; the run\'s record of its split is damaged'
                ) from None
        return Split(sides["train"], sides["test"], sides["validation"])

    # ---- each test pair's result -----------------------------------------------------------------
    def save_pair_scores(self, rows: list[dict]) -> Path:
        """pair_scores.jsonl (training.py writes it at the final scoring), replaced whole, never through a link."""
        self.folder.write_atomic(PAIR_SCORES, pair_scores_text(rows).encode("utf-8"))
        return self.path / PAIR_SCORES

    # ---- failures ---------------------------------------------------------------------------
    def save_traceback(self, text: str) -> Path:
        """Append a bug's traceback (a folder keeps every failure it saw, newest last)."""
        path = self.path / TRACEBACK
        with self.folder.open_append(TRACEBACK) as f:
            f.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} process {os.getpid()}\n{text}\n".encode())
        return path


def pair_scores_text(rows: list[dict]) -> str:
    """Per-pair results as JSON lines ({"prompt", "text", "x", "y", "answer", "right", "loss", "tokens"}),
    the format of a run's pair_scores.jsonl and of `promptgrad eval --pairs`."""
    keys = ("prompt", "text", "x", "y", "answer", "right", "loss", "tokens")
    return "".join(json.dumps({k: row[k] for k in keys}, ensure_ascii=False) + "\n" for row in rows)


def parse_events(data: bytes, first_line: int = 1) -> tuple[list[Event], list[int]]:
    """The events in these whole lines of metrics.jsonl, and the numbers of the lines that are not events."""
    events, bad = [], []
    for number, line in enumerate(data.split(b"\n"), first_line):
        if not line.strip():
            continue
        try:
            events.append(event_from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):  # UnicodeDecodeError is a ValueError
            bad.append(number)
    return events, bad


def read_events(path: Path) -> tuple[list[Event], list[int]]:
    try:
        data = read_bytes(path)
    except FileNotFoundError:
        return [], []
    return parse_events(data[: data.rfind(b"\n") + 1])  # a last line without its newline is still being written


class EventFollower:
    """Reads the events appended to a metrics.jsonl since the last look, by byte offset. A resume cuts
    the file back and writes on, possibly past the old offset between two looks; the bytes just before
    the offset then differ from those read, so the follower starts again from the beginning (`reset`)."""

    TAIL = 256  # bytes before the offset remembered to recognise the same file

    def __init__(self, path: Path):
        self.path = path
        self.offset, self.tail, self.inode, self.lines = 0, b"", None, 0

    def poll(self) -> tuple[list[Event], list[int], bool]:
        """(new events, numbers of new lines that are not events, whether to forget what was read before)."""
        try:
            fd = open_regular(self.path)
        except FileNotFoundError:
            reset = self.offset > 0
            self.offset, self.tail, self.inode, self.lines = 0, b"", None, 0
            return [], [], reset
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            reset = False
            if self.offset:
                same = info.st_ino == self.inode and info.st_size >= self.offset
                if same:
                    start = self.offset - len(self.tail)
                    f.seek(start)
                    same = f.read(len(self.tail)) == self.tail
                if not same:
                    reset = True
                    self.offset, self.tail, self.lines = 0, b"", 0
            f.seek(self.offset)
            data = f.read(max(0, info.st_size - self.offset))
        whole = data[: data.rfind(b"\n") + 1]
        if not whole:
            return [], [], reset
        events, bad = parse_events(whole[:-1], self.lines + 1)
        self.lines += whole.count(b"\n")
        self.tail = (self.tail + whole)[-self.TAIL :]
        self.offset += len(whole)
        self.inode = info.st_ino
        return events, bad, reset


@dataclass(frozen=True)
class RunSummary:
    """One line about a run folder, read from its files without loading any model."""

    path: Path
    name: str
    state: str  # running | finished | stopped | failed | started | empty | damaged
    step: int
    total_steps: int
    best_test_loss: float | None
    final_test_loss: float | None  # on the whole test set, once finished
    model: str
    mode: str
    modified: float  # seconds since the epoch, of metrics.jsonl (or config.toml)
    problem: str = ""  # why the folder is damaged (state "damaged"), or which lines of metrics.jsonl were skipped


def is_locked(path: Path) -> bool:
    """Is some process writing this run folder now? Asked without taking the lock (F_OFD_GETLK), so
    asking never gets in a writer's way."""
    try:
        fd = open_regular(path / LOCK)
    except FileNotFoundError:
        return False
    try:
        answer = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, whole_file_lock(fcntl.F_WRLCK))
    finally:
        os.close(fd)
    return struct.unpack("@hhqqi4x", answer)[0] != fcntl.F_UNLCK


def summarize(path: Path) -> RunSummary:
    """The folder's summary; a folder whose files cannot be read is summarised as damaged, with why."""
    path = Path(path)
    try:
        modified = os.lstat(path / METRICS if is_regular(path / METRICS) else path / CONFIG).st_mtime
    except OSError:
        modified = 0.0
    try:
        run = RunFolder.open(path)
        config = run.config()
        events, bad = read_events(run.path / METRICS)
        running = is_locked(run.path)
    except (UserError, OSError) as e:
        problem = str(e) if isinstance(e, UserError) else f"{e.strerror or e}"
        return RunSummary(path, path.name, "damaged", 0, 0, None, None, "?", "?", modified, problem)
    state, step, total, best, final = "empty", 0, 0, None, None
    for event in events:
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
    if running:
        state = "running"
    problem = (
        f"{METRICS} lines {', '.join(map(str, bad[:5]))}{' ...' if len(bad) > 5 else ''} are not events (skipped)"
        if bad
        else ""
    )
    return RunSummary(
        run.path,
        run.path.name,
        state,
        step,
        total,
        best,
        final,
        config.problem.model,
        config.learning.mode,
        modified,
        problem,
    )


def list_runs(runs_dir: str | Path) -> list[RunSummary]:
    """Every run folder under `runs_dir` (damaged ones included, as such), newest first; and the runs of
    each sweep there (a folder holding sweep.toml: `promptgrad sweep` puts its runs in runs_dir/SWEEP/),
    named SWEEP/RUN, so a sweep's runs can be found, filtered by the sweep's name and reported together.
    A sweep folder that is a link is not entered."""

    def holds_a_run(path: Path) -> bool:
        return path.is_dir() and os.path.lexists(path / CONFIG)

    root = Path(runs_dir)
    if not root.is_dir():
        return []
    runs = []
    for p in root.iterdir():
        if holds_a_run(p):
            runs.append(summarize(p))
        elif is_directory(p) and is_regular(p / SWEEP_SPEC):
            runs += [replace(summarize(q), name=f"{p.name}/{q.name}") for q in p.iterdir() if holds_a_run(q)]
    return sorted(runs, key=lambda r: r.modified, reverse=True)


def run_folder_holding(path: str | Path) -> Path | None:
    """The run folder that `path` is or lies in (made or not yet), or None: a folder holding config.toml
    and one of the files only a run writes (a config.toml alone may be a user's own, beside their data)."""
    path = Path(os.path.abspath(path))
    for folder in (path, *path.parents):
        if os.path.lexists(folder / CONFIG) and any(
            os.path.lexists(folder / name) for name in (METRICS, FACTS, SPLIT, CHECKPOINT)
        ):
            return folder
    return None


def is_directory(path: Path) -> bool:
    """Is there a folder at `path` itself (a link to one does not count)?"""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's state, on the CPU whatever device wrote it; plain data only, never code."""
    try:
        data = read_bytes(path)
    except FileNotFoundError:
        raise UserError(
            f"run folder {path.parent} has no {path.name} to resume from; start a new run instead"
        ) from None
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(
            f"{path} holds more than tensors and plain data (a checkpoint promptgrad writes never does), "
            f"so it was not loaded; it may have been tampered with"
        ) from None
    except Exception as e:  # a truncated or overwritten file fails in many ways inside torch and zipfile
        raise UserError(
            f"{path} is damaged and cannot be read ({type(e).__name__}); start a new run, from its prompt "
            f"with init run:{path.parent} if prompt.safetensors is intact"
        ) from None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int) or "rng" not in state:
        raise UserError(f"{path} is not a promptgrad checkpoint (no step and RNG state in it)")
    try:
        read_int(state["step"], "its step")
    except DamagedNumber as e:
        raise UserError(
            f"{path} is damaged: {e}; start a new run, from its prompt with init run:{path.parent}"
        ) from None
    return state


def prompt_vectors(path: str | Path) -> torch.Tensor:
    """Another run's learned prompt, for init run:<folder> (model/soft_prompt.py asks its caller for it)."""
    return load_prompt(path)[0]


def load_prompt(path: str | Path) -> tuple[torch.Tensor, dict[str, str]]:
    """The prompt tensor [prompt_len, hidden] and its metadata, checked to be whole and finite."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        path = path / PROMPT
    try:
        data = read_bytes(path)
    except FileNotFoundError:
        raise UserError(
            f"{path} does not exist; the run has not saved a prompt yet (it writes one at each checkpoint)"
        ) from None
    try:
        tensors = load_safetensors(data)
        metadata = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")]).get("__metadata__") or {}
    except (SafetensorError, ValueError, AttributeError) as e:
        raise UserError(
            f"{path} is damaged and cannot be read ({str(e).splitlines()[0][:80] if str(e) else type(e).__name__})"
        ) from None
    prompt = tensors.get("prompt")
    if prompt is None or prompt.dim() != 2 or not prompt.is_floating_point():
        raise UserError(f"{path} holds no 2-D float tensor named 'prompt'; it is not a promptgrad prompt")
    if not torch.isfinite(prompt).all():
        raise UserError(f"{path} holds non-finite values (NaN or inf); it is not a usable prompt")
    return prompt, metadata
