"""The experiment trackers people already use, fed from the training loop's events:
`--report-to tensorboard|mlflow|trackio|wandb` (the convention of transformers' TrainingArguments.report_to).

    for event in tracked(run.events(), config, lambda: run.config, resumed):   # training.train() does this
        ...

Each tracker is an optional extra (`pip install 'promptgrad[tensorboard]'`) imported only when asked
for; none is required. They mirror the run, the run folder stays its record: their files go under
`tracker_dir` (default `tracking/`, beside `runs/`), never into the run folder.

- Set-up: each tracker asked for is imported before the run starts, so a missing package is one line
  (a Failed event naming the extra to install) and the run folder is never made.
- Started: the tracker run opens, named after the run folder, with the resolved settings (and what the
  run decided: device, precision, pair counts) as its hyperparameters. Then every numeric field of every
  logged event is a metric at that event's step: train/loss, train/lr, train/examples_per_s at each
  Step; eval/<prompt>/test_loss and accuracy at each Evaluation (each hand-written wording its own
  name); <kind>/<field> for the others (validation/loss, extended/total_steps, finished/test_loss...).
- A resumed run goes on in the same tracker run where the tracker allows it: TensorBoard writes to
  the same folder and drops what was logged after the checkpoint (purge_step); MLflow and wandb reopen
  the run whose id was recorded under tracker_dir/run-ids/ when the run began; trackio resumes by name.
- Each tracker is called on a thread of its own, in order, so a slow or vanished server never holds the
  run up; the end of the run waits FINISH_SECONDS at most for what they were given to be written.
- A tracker that fails (a full disk, a server gone) never stops the run: a TrackerFailed event says
  so once, and the run goes on without that tracker.
- Under data parallelism only rank 0 reports, as only rank 0 writes the run folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib
import json
import math
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from promptgrad.config import TRACKERS, TrainConfig
from promptgrad.errors import UserError
from promptgrad.events import Evaluation, Event, Failed, Finished, Progress, Started, Step, TrackerFailed
from promptgrad.files import Folder, read_text
from promptgrad.store.run_folder import run_folder_holding

PROJECT = "promptgrad"  # the MLflow experiment, wandb and trackio project, unless their own variable names another


# ---- what a tracker is told -----------------------------------------------------------------------


@dataclass(frozen=True)
class TrackedRun:
    name: str  # the run folder's name: the tracker run's name
    run_dir: str  # the run folder, absolute ("" for promptgrad.learn, which writes none)
    directory: Path  # tracker_dir
    hyperparameters: dict[str, str | int | float | bool]
    resumed: bool
    start_step: int
    previous_id: str | None  # this tracker's id for the run, recorded when it began (resumed runs only)


def hyperparameters(config: TrainConfig, started: Started) -> dict[str, str | int | float | bool]:
    """The resolved settings by their flat names (a list as JSON text, which every tracker takes), and
    what the run decided as `run.<field>` (start_step is where it resumed, not a hyperparameter)."""
    values: dict[str, Any] = {name: json.dumps(v) if isinstance(v, list) else v for name, v in config.flat().items()}
    for f in dataclasses.fields(started):
        value = getattr(started, f.name)
        if f.name != "start_step" and isinstance(value, (str, int, float, bool)):
            values[f"run.{f.name}"] = value
    return values


def metric_name(text: str) -> str:
    """A name every tracker accepts (MLflow's are the strictest: letters, digits, _ - . space : /); a
    wording's own / and : become _ too, so it never nests the name or looks like one."""
    return re.sub(r"\s+", " ", re.sub(r"[^\w.\- ]", "_", text)).strip()[:80] or "_"


def numbers(values: dict[str, Any]) -> dict[str, float]:
    """The finite numbers among `values` (None: not measured for this prompt; a flag is no measurement)."""
    return {
        k: float(v)
        for k, v in values.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


def metrics_of(event: Event) -> dict[str, float]:
    """The measurements an event carries, by the names the trackers show them under."""
    if isinstance(event, Step):
        return numbers(
            {
                "train/loss": event.loss,
                "train/lr": event.lr,
                "train/examples_per_s": event.examples_per_s,
                "train/epoch": event.epoch,
            }
        )
    if isinstance(event, Evaluation):
        # the start prompt's text describes it ("untrained (random)", "start: run X"): its metric keeps one name
        named = event.text and event.prompt != "untrained"
        prompt = metric_name(f"{event.prompt} {event.text}" if named else event.prompt)
        values = {f"eval/{prompt}/test_loss": event.test_loss, f"eval/{prompt}/accuracy": event.accuracy}
        if event.prompt == "learned":
            values["eval/learned/best_test_loss"] = event.best_test_loss
        return numbers(values)
    if isinstance(event, Started) or not event.logged:  # Started: hyperparameters; Progress: no measurement
        return {}
    return numbers(
        {f"{event.kind}/{f.name}": getattr(event, f.name) for f in dataclasses.fields(event) if f.name != "step"}
    )


# ---- the trackers: the same few methods each ------------------------------------------------------


class Tracker:
    """One tracker: `start` opens its run (returning an id to go on with it on a resume, or None),
    `log` writes the metrics of one step, `finish` closes it: "finished", "stopped" or "failed"."""

    name: ClassVar[str]
    module: ClassVar[str]  # imported at set-up: a missing package is found before the run starts
    package: ClassVar[str]

    def __init__(self, library: ModuleType):
        self.library = library

    def start(self, run: TrackedRun) -> str | None:
        raise NotImplementedError

    def log(self, step: int, metrics: dict[str, float]) -> None:
        raise NotImplementedError

    def finish(self, outcome: str) -> None:
        raise NotImplementedError


class TensorBoard(Tracker):
    """Event files under tracker_dir/tensorboard/<run name>/ (`tensorboard --logdir tracking/tensorboard`)."""

    name, module, package = "tensorboard", "torch.utils.tensorboard", "tensorboard"

    def start(self, run: TrackedRun) -> str | None:
        from torch.utils.tensorboard.summary import hparams

        # purge_step: TensorBoard hides what earlier files logged from this step on, as metrics.jsonl is cut
        # back to the checkpoint (a run that crashed after it logged steps it does again); a new run hides all
        purge = run.start_step + 1 if run.resumed else 0
        self.writer = self.library.SummaryWriter(
            str(run.directory / "tensorboard" / run.name), purge_step=purge, flush_secs=10
        )
        for summary in hparams(run.hyperparameters, {"finished/test_loss": 0, "finished/accuracy": 0}):
            self.writer.file_writer.add_summary(summary, run.start_step)
        return None

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, step)

    def finish(self, outcome: str) -> None:
        self.writer.close()


class MLflow(Tracker):
    """A run in the experiment `promptgrad` (or $MLFLOW_EXPERIMENT_NAME) of the tracking server MLflow is
    set to ($MLFLOW_TRACKING_URI, or mlflow.set_tracking_uri in a notebook), or else of a local store
    under tracker_dir/mlruns (`mlflow ui --backend-store-uri tracking/mlruns`)."""

    name, module, package = "mlflow", "mlflow", "mlflow"
    STATUS = {"finished": "FINISHED", "stopped": "KILLED", "failed": "FAILED"}

    def start(self, run: TrackedRun) -> str | None:
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import is_tracking_uri_set

        uri = (
            self.library.get_tracking_uri() if is_tracking_uri_set() else None
        )  # $MLFLOW_TRACKING_URI, set_tracking_uri()
        if not uri:
            # MLflow keeps its file store only for those who opt in; it is the store that needs no server
            # and no database library (mlflow-skinny has none), and `mlflow ui` reads it
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            uri = (run.directory / "mlruns").absolute().as_uri()
        self.client = client = self.library.MlflowClient(tracking_uri=uri)
        experiment = self.experiment_id(os.environ.get("MLFLOW_EXPERIMENT_NAME", PROJECT))
        self.run_id, logged = None, {}
        if run.previous_id:
            with contextlib.suppress(MlflowException):  # deleted since: a new one
                logged = client.get_run(run.previous_id).data.params
                client.update_run(run.previous_id, status="RUNNING")
                self.run_id = run.previous_id
        if self.run_id is None:
            tags = {"promptgrad.run_dir": run.run_dir} if run.run_dir else {}
            self.run_id = client.create_run(experiment, run_name=run.name, tags=tags).info.run_id
        # a parameter is logged once and never changes; what a resume changed (more steps) becomes a tag
        new = [Param(k, str(v)[:6000]) for k, v in run.hyperparameters.items() if k not in logged]
        for i in range(0, len(new), 100):  # log_batch takes at most 100 parameters
            client.log_batch(self.run_id, params=new[i : i + 100])
        for k, v in run.hyperparameters.items():
            if k in logged and logged[k] != str(v):
                client.set_tag(self.run_id, f"resumed/{k}", f"{v} (from step {run.start_step})")
        return self.run_id

    def experiment_id(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return self.client.create_experiment(name)
        except MlflowException:  # another run made it meanwhile
            return self.client.get_experiment_by_name(name).experiment_id

    def log(self, step: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in metrics.items()])

    def finish(self, outcome: str) -> None:
        self.client.set_terminated(self.run_id, status=self.STATUS[outcome])


class Trackio(Tracker):
    """A run in the trackio project `promptgrad` (or $TRACKIO_PROJECT), in trackio's own local store
    (`trackio show`; $TRACKIO_DIR moves it); resumed by its name."""

    name, module, package = "trackio", "trackio", "trackio"

    def start(self, run: TrackedRun) -> str | None:
        self.run = self.library.init(
            project=os.environ.get("TRACKIO_PROJECT", PROJECT),
            name=run.name,
            config=run.hyperparameters,
            resume="allow" if run.resumed else "never",
        )
        return None

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log(metrics, step=step)

    def finish(self, outcome: str) -> None:
        self.run.finish()


class Wandb(Tracker):
    """A run in the wandb project `promptgrad` (or $WANDB_PROJECT), its local files under
    tracker_dir/wandb/; online after `wandb login`, or offline with WANDB_MODE=offline (`wandb sync`)."""

    name, module, package = "wandb", "wandb", "wandb"

    def start(self, run: TrackedRun) -> str | None:
        run.directory.mkdir(parents=True, exist_ok=True)  # wandb wants its folder to exist
        self.run = self.library.init(
            project=os.environ.get("WANDB_PROJECT", PROJECT),
            name=run.name,
            dir=str(run.directory),
            id=run.previous_id,
            resume="allow" if run.previous_id else None,
        )
        self.run.config.update(run.hyperparameters, allow_val_change=True)  # a resume may have changed some (steps)
        return self.run.id

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log(metrics, step=step)

    def finish(self, outcome: str) -> None:
        self.run.finish(exit_code=1 if outcome == "failed" else 0)


TRACKER_TYPES: dict[str, type[Tracker]] = {t.name: t for t in (TensorBoard, MLflow, Trackio, Wandb)}
assert tuple(TRACKER_TYPES) == TRACKERS, "the report_to setting (config.py) names each tracker here"


def open_tracker(name: str) -> Tracker:
    """The tracker `name`, its package imported now (set-up), or a one-line UserError saying what to install."""
    kind = TRACKER_TYPES[name]
    try:
        library = importlib.import_module(kind.module)
    except ImportError:
        raise UserError(
            f"report_to {name} needs the {kind.package} package: pip install 'promptgrad[{name}]'", "report_to"
        ) from None
    except Exception as e:  # installed but broken (a clash of versions): still one line, before the run
        raise UserError(
            f"report_to {name}: the {kind.package} package failed to import ({type(e).__name__}: "
            f"{str(e)[:200]}); reinstall it: pip install --force-reinstall 'promptgrad[{name}]'",
            "report_to",
        ) from None
    return kind(library)


# ---- the ids that let a resumed run go on in the same tracker run ----------------------------------


def id_file(directory: Path, run_dir: str, tracker: str) -> Path:
    """One file a tracker and run (each written by its own tracker's thread), named by the run folder's path."""
    return directory / "run-ids" / f"{hashlib.sha256(run_dir.encode()).hexdigest()[:16]}-{tracker}.json"


def recorded_id(directory: Path, run_dir: str, tracker: str) -> str | None:
    try:
        record = json.loads(read_text(id_file(directory, run_dir, tracker)))
    except (OSError, UserError, ValueError):  # none yet, or unreadable: the tracker starts a new run
        return None
    found = record.get("id") if isinstance(record, dict) and record.get("run_dir") == run_dir else None
    return found if isinstance(found, str) else None


def record_id(directory: Path, run_dir: str, tracker: str, tracker_id: str) -> None:
    path = id_file(directory, run_dir, tracker)
    with (
        Folder.at(directory, create=True) as tracking,
        tracking.sub(path.parent.name, create=True) as ids,
    ):  # run-ids/: never a link
        ids.write_atomic(path.name, json.dumps({"run_dir": run_dir, "tracker": tracker, "id": tracker_id}).encode())


def check_tracker_dir(config: TrainConfig) -> None:
    """The trackers' folder is never in a run folder (a run folder holds only promptgrad's own files):
    neither in one that exists (a resumed run's, any other) nor in the one this run is about to make."""
    directory = Path(os.path.abspath(config.watch.tracker_dir))
    inside = run_folder_holding(directory)
    name = config.machine.name
    if inside is None and name:
        planned = Path(os.path.abspath(Path(config.machine.runs_dir) / name))
        inside = planned if directory == planned or planned in directory.parents else None
    if inside is not None:
        raise UserError(
            f"--tracker-dir {config.watch.tracker_dir} is inside the run folder {inside}, which holds only "
            f"promptgrad's own files; give a folder beside the runs (the default is tracking/)",
            "tracker_dir",
        )
    check_tracker_folders(directory)


TRACKER_FOLDERS = ("tensorboard", "mlruns", "wandb", "run-ids")  # what the trackers make in tracker_dir


def check_tracker_folders(directory: Path) -> None:
    """The trackers write their folders by path (their libraries take no descriptor): a link planted in
    place of one is refused before they start, so what they write never lands elsewhere."""
    try:
        tracking = Folder.at(directory)
    except FileNotFoundError:
        return  # made by the trackers, as folders
    with tracking:
        for name in TRACKER_FOLDERS:
            try:
                tracking.sub(name).close()
            except FileNotFoundError:
                continue
            except UserError as e:
                raise UserError(f"{e} (a tracker writes there)", "tracker_dir") from None


# ---- the feed: the event stream, passed through, and written to each tracker -------------------------

MAX_WAITING = 10_000  # calls a tracker may fall behind by (a server slow or gone) before it is left out
FINISH_SECONDS = 30.0  # how long the end of a run waits for the trackers to write what they were given
PROGRESS_SECONDS = 0.5  # as the training loop's Progress events


def one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}".rstrip(": ")


class Worker:
    """One tracker's calls, made in order on a thread of its own, so that the run never waits on a tracker
    (MLflow's client retries a server that has gone for minutes). Its first failure is kept, with the
    step and what it was doing, and its calls after that are skipped."""

    def __init__(self, tracker: Tracker):
        self.tracker = tracker
        self.calls: queue.Queue = queue.Queue()
        self.failure: str | None = None
        self.failed_at = 0
        self.notes: list[str] = []  # trouble that does not stop it (its run's id not recorded)
        threading.Thread(target=self.work, name=f"promptgrad tracker {tracker.name}", daemon=True).start()

    def put(self, step: int, what: str, call: Callable[[], None]) -> None:
        if self.failure is None and self.calls.qsize() >= MAX_WAITING:
            self.fail(step, f"fell {MAX_WAITING} records behind the run (a server too slow, or gone?)")
        self.calls.put((step, what, call))

    def fail(self, step: int, message: str) -> None:
        self.failure, self.failed_at = message, step

    def work(self) -> None:
        while True:
            step, what, call = self.calls.get()
            try:
                if self.failure is None:
                    call()
            except Exception as e:  # the tracker's trouble is never the run's
                self.fail(step, f"could not {what} at step {step} ({one_line(e)})")
                with contextlib.suppress(Exception):
                    self.tracker.finish("failed")  # close what it holds open (a file, a connection)
            finally:
                self.calls.task_done()

    @property
    def busy(self) -> int:
        return self.calls.unfinished_tasks


class Feed:
    """The trackers of one run: started at Started, fed each event, closed at the end; one that fails is
    reported once (TrackerFailed) and left out from then on."""

    def __init__(self, trackers: list[Tracker], config: Callable[[], TrainConfig], resumed: bool):
        self.trackers, self.workers = trackers, []  # opened; started (at Started), each on its thread
        self.config, self.resumed = config, resumed
        self.step = 0

    def take(self, event: Event) -> Iterator[TrackerFailed]:
        self.step = event.start_step if isinstance(event, Started) else getattr(event, "step", self.step)
        if isinstance(event, Started) and not self.workers:
            self.start(event)
        metrics = metrics_of(event)
        if metrics:
            for worker in self.workers:
                worker.put(self.step, "log", functools.partial(worker.tracker.log, self.step, metrics))
        yield from self.failures()

    def start(self, started: Started) -> None:
        config = self.config()  # as the run resolved it (the task's template and data filled in, paths made absolute)
        directory = Path(config.watch.tracker_dir)
        run_dir = os.path.realpath(started.run_dir) if started.run_dir else ""  # the same folder from any directory
        name = Path(run_dir).name if run_dir else config.machine.name or datetime.now().strftime("learn-%Y%m%d-%H%M%S")
        values = hyperparameters(config, started)
        for tracker in self.trackers:
            previous = recorded_id(directory, run_dir, tracker.name) if self.resumed and run_dir else None
            run = TrackedRun(name, run_dir, directory, values, self.resumed, started.start_step, previous)
            worker = Worker(tracker)
            worker.put(self.step, "start", functools.partial(self.open, worker, run))
            self.workers.append(worker)

    @staticmethod
    def open(worker: Worker, run: TrackedRun) -> None:
        """On the tracker's thread: its run opened (a server may take a while), and its id recorded."""
        tracker_id = worker.tracker.start(run)
        if tracker_id and run.run_dir and tracker_id != run.previous_id:
            try:
                record_id(run.directory, run.run_dir, worker.tracker.name, tracker_id)
            except (OSError, UserError) as e:
                worker.notes.append(
                    f"could not record its run's id ({one_line(e)}); a resume of this run starts a new one"
                )

    def failures(self) -> Iterator[TrackerFailed]:
        for worker in list(self.workers):
            while worker.notes:
                yield TrackerFailed(self.step, worker.tracker.name, worker.notes.pop(0))
            if worker.failure is not None:
                self.workers.remove(worker)
                yield TrackerFailed(
                    worker.failed_at,
                    worker.tracker.name,
                    f"{worker.failure}; the run goes on without it (its folder is the record)",
                )

    def finish(self, outcome: str) -> Iterator[Event]:
        """Each tracker closed, after what it was given is written (waited for FINISH_SECONDS at most)."""
        for worker in self.workers:
            worker.put(self.step, "finish", functools.partial(worker.tracker.finish, outcome))
        deadline, shown, total = time.monotonic() + FINISH_SECONDS, 0.0, 0
        while (waiting := sum(w.busy for w in self.workers if w.failure is None)) and time.monotonic() < deadline:
            total = max(total, waiting)
            if time.monotonic() - shown >= PROGRESS_SECONDS:  # a server slow to answer: say what is being waited for
                shown = time.monotonic()
                yield Progress(self.step, "writing to the trackers", total - waiting, total)
            time.sleep(0.02)
        for worker in self.workers:
            if worker.failure is None and worker.busy:
                worker.fail(
                    self.step, f"did not finish within {FINISH_SECONDS:g} s ({worker.busy} records left unwritten)"
                )
        yield from self.failures()
        self.workers = []


def is_reporting_process() -> bool:
    """Rank 0 of a data-parallel run (the launcher's RANK), as only rank 0 writes the run folder."""
    return int(os.environ.get("RANK", "0")) == 0


def tracked(
    events: Iterator[Event], config: TrainConfig, resolved: Callable[[], TrainConfig], resumed: bool
) -> Iterator[Event]:
    """`events` passed through unchanged, each also written to the trackers of `config.watch.report_to`
    (`resolved()`: the settings as the run resolved them, read at Started), with a TrackerFailed event
    where a tracker fails. A tracker's package missing is a Failed event before the run starts."""
    names = list(dict.fromkeys(config.watch.report_to))
    if not names or not is_reporting_process():
        yield from events
        return
    trackers = []
    try:
        check_tracker_dir(config)
        for i, name in enumerate(names):
            yield Progress(0, f"loading the tracker {name}", i, len(names))  # mlflow or wandb: seconds
            trackers.append(open_tracker(name))
    except UserError as e:
        close = getattr(events, "close", None)
        if close:
            close()  # never started: the run folder is never made
        yield Failed(0, str(e), user_error=True, field=e.field or "")
        return
    feed = Feed(trackers, resolved, resumed)
    try:
        for event in events:
            yield from feed.take(event)
            if isinstance(event, (Finished, Failed)):  # the trackers closed before the last event: all is written then
                yield from feed.finish(
                    "failed" if isinstance(event, Failed) else "stopped" if event.stopped else "finished"
                )
            yield event
    except BaseException as e:  # the consumer stopped reading (an app closing), or worse: the run did not end
        for _ in feed.finish("stopped" if isinstance(e, GeneratorExit) else "failed"):
            pass  # nobody to tell: nothing may be yielded while closing
        raise
    finally:
        close = getattr(events, "close", None)
        if close:
            close()  # the run's own clean-up (its folder's lock)
