"""The training loop, written once: a generator of typed events that the CLI and the TUI both consume.

    for event in train(config, stop=threading.Event()):
        ...

Soft prompts (Adam on vectors) and hard prompts (PEZ, GCG, relax) run through this same loop: a
*learner* (learner.py, hard_search.py) makes each step; the loop owns everything else, once:

- the run folder (run_folder.py): locked by one writer; every logged event appended to metrics.jsonl;
  checkpoints every `checkpoint_every` steps, every `checkpoint_minutes`, on a stop and at the end;
- resume: the settings that define the run come from its folder, metrics.jsonl is cut back to the
  checkpoint, and a new length extends the schedule without the learning rate ever jumping up;
- evaluation: the hand-written and the untrained prompt on the evaluation subset at the start (seconds),
  the learned prompt on it every `eval_every` steps, and all three on the whole test set at the end;
- the stop signal (ctrl+c, SIGTERM, SIGHUP, the TUI's stop): checked after every step and between the
  batches of an evaluation; the run then saves a checkpoint and ends with Finished(stopped=True);
- failures end the stream with one Failed event instead of an exception, so a UI consuming it stays
  up: one line for bad input, the whole traceback (also in traceback.txt) for a bug.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import traceback
from collections.abc import Generator, Iterator
from datetime import datetime
from pathlib import Path

import torch

from promptgrad.config import TrainConfig
from promptgrad.distributed import Processes, processes
from promptgrad.errors import UserError, environment_problem, peer_ended
from promptgrad.evaluation import PromptScore, predictions, scoring
from promptgrad.events import (Checkpoint, Evaluation, Event, Extended, Failed, Finished, NearestTokens, Predictions,
                               Progress, Reading, Started, Step)
from promptgrad.explain import read_prompt
from promptgrad.learner import Learner, NonFinite, SoftLearner, training_step  # noqa: F401 (training_step: the benchmarks' step)
from promptgrad.nearest_tokens import nearest_tokens
from promptgrad.pairs import Pair
from promptgrad.precision import resolve_device
from promptgrad.probe import Probe
from promptgrad.run_facts import RunFacts
from promptgrad.run_folder import PROMPT, RunFolder, load_checkpoint
from promptgrad.schedule import Schedule
from promptgrad.session import Session, open_session
from promptgrad.signals import uninterrupted
from promptgrad.soft_prompt import SoftPrompt
from promptgrad.template import Batch, TemplateEncoder

PROGRESS_SECONDS = 0.5  # Progress events come at most this often (plus the first and the last)


class StopRequested(Exception):
    """The stop signal arrived between the batches of an evaluation."""


def train(config: TrainConfig, stop: threading.Event | None = None, resume: str | Path | None = None,
          probe: Probe | None = None) -> Iterator[Event]:
    """Run (or resume) training, yielding events. `resume` is a run folder; `config` then holds its saved
    settings with any overrides: more steps, other evaluation or checkpoint intervals, another device.
    `probe` (probe.py), if given, lets another thread try the prompt while the run goes on."""
    return TrainingRun(config, stop or threading.Event(), resume, probe).events()


def epoch_batches(pairs: list, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches of one epoch: a seeded shuffle, then within windows of 16 batches, examples of
    similar length together (less padding), then the batches shuffled again. A pure function of
    (seed, epoch), so a resumed run sees exactly the batches it would have seen."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(len(pairs), generator=generator).tolist()
    window = batch_size * 16
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: len(pairs[i].context) + len(pairs[i].target))
        batches += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def prompt_metadata(config: TrainConfig, step: int, precision: str) -> dict[str, str]:
    return {"model": config.model, "template": config.template, "prompt_len": str(config.prompt_len),
            "init": config.init, "step": str(step), "precision": precision, "mode": config.mode}


def make_learner(session: Session) -> Learner:
    config, frozen, encoder = session.config, session.frozen, session.encoder
    generator = torch.Generator().manual_seed(config.seed)
    if config.mode == "hard":
        if session.processes.active:
            raise UserError("hard mode runs in a single process; start it without accelerate launch / torchrun", "mode")
        from promptgrad.hard_search import HardLearner

        return HardLearner(config, frozen, encoder, session.split.train, session.eval_batch_size, generator)
    initial = SoftPrompt.initial(config.init, config.prompt_len, frozen.embedding.weight, frozen.tokenizer, generator)
    pairs = [encoder.encode(p.x, p.y) for p in session.split.train]
    return SoftLearner(frozen, initial, pairs, config.batch_size, config.lr, session.processes)


class TrainingRun:
    def __init__(self, config: TrainConfig, stop: threading.Event, resume: str | Path | None, probe: Probe | None = None):
        self.config, self.stop, self.resume, self.probe = config, stop, resume, probe
        self.run: RunFolder | None = None  # the folder this process writes (rank 0 only)
        self.step = 0
        self.best = math.inf  # best test loss of the learned prompt so far
        self.full_baselines: dict[str, list[float]] = {}  # label -> [loss, accuracy, pairs] on the whole test set
        self.last_progress = 0.0
        self.logging = False  # from Started on: a run refused before it began leaves its folder untouched

    # ---- the stream and its failures ----------------------------------------------------------
    def events(self) -> Iterator[Event]:
        try:
            yield from self._events()
        except UserError as e:
            yield self.emit(Failed(self.step, str(e), user_error=True, field=e.field or ""))
        except NonFinite as e:
            bf16 = getattr(self, "session", None) is not None and self.session.precision.precision == "bf16"
            advice = f"lower lr (it is {self.config.lr:g})" + (" or use precision fp32" if bf16 else "")
            yield self.emit(Failed(self.step, f"{e}; the prompt was not saved (the last checkpoint is intact); {advice}",
                                   user_error=True, field="lr"))
        except Exception as e:  # the machine's doing, a peer gone, or a bug: keep the consumer up either way
            problem = environment_problem(e)
            if problem is not None:
                yield self.emit(Failed(self.step, problem, user_error=True))
            elif peer_ended(e):
                resume = f"; resume with: promptgrad train --resume {self.run.path}" if self.run is not None else ""
                yield self.emit(Failed(self.step, f"another process of this run ended, so this one cannot go on "
                                                  f"(its own output says why){resume}", user_error=False))
            else:  # a bug or a runtime failure (out of memory): keep its traceback
                text = traceback.format_exc()
                where = ""
                if self.run is not None and self.logging:
                    try:
                        where = f"; traceback in {self.run.save_traceback(text)}"
                    except (OSError, UserError):
                        pass
                yield self.emit(Failed(self.step, f"{type(e).__name__}: {e}{where}", user_error=False, traceback=text))
        finally:
            if self.run is not None:
                self.run.release()
                self.run.remove_if_unused()

    def emit(self, event: Event) -> Event:
        """Log an event (if this process writes the folder) and hand it back to be yielded."""
        self.logging = self.logging or isinstance(event, Started)
        if self.run is not None and self.run.writable and event.logged and self.logging:
            try:
                self.run.append(event)
            except (UserError, OSError):
                if not isinstance(event, Failed):  # a failure is still reported when it cannot be logged
                    raise
        return event

    # ---- the run -------------------------------------------------------------------------------
    def _events(self) -> Iterator[Event]:
        stop = self.stop
        config = self.config = self.config.with_absolute_paths()  # the same files from any working directory
        checkpoint, saved, recorded = None, None, None
        group = processes(resolve_device(config.device).type)
        if group.is_main:  # only rank 0 writes the run folder; locked first, so a second writer fails at once
            if self.resume:
                self.run = RunFolder.open_for_writing(self.resume)
            else:
                self.run = RunFolder.create(config.runs_dir, config.name or datetime.now().strftime("%Y%m%d-%H%M%S"))
        if self.resume:  # what defines the run comes from its folder; say which setting differs
            folder = RunFolder.open(self.resume)
            saved = folder.config()
            config.check_resumable_as(saved, str(folder.path))
            config = self.config = config.replace(precision=saved.precision)
            recorded = RunFacts.load(folder.path)
            checkpoint = load_checkpoint(folder.path / "checkpoint.pt")
            if checkpoint.get("mode") != config.mode or (config.mode == "hard" and checkpoint.get("method") != config.method):
                held = f"hard {checkpoint.get('method')}" if checkpoint.get("mode") == "hard" else "soft"
                raise UserError(f"run {folder.path} holds a {held} checkpoint; resume it with the mode and method it was started with", "method")
        yield Progress(0, f"loading data and model {config.model}", 0, 0)
        self.session = session = open_session(config, recorded.data if recorded else None, str(self.resume or ""))
        frozen, encoder, split = session.frozen, session.encoder, session.split
        precision = session.precision.precision
        config = self.config = config.replace(precision=precision)  # recorded as decided, never "auto"
        group = session.processes
        learner = make_learner(session)
        steps_per_epoch = math.ceil(len(learner.pairs) / learner.batch_size)
        total = config.total_steps(steps_per_epoch)
        schedule = Schedule(config.lr, config.warmup_steps, config.schedule, total)
        finished = False
        extended: Extended | None = None
        if checkpoint:
            learner.load_state_dict(checkpoint)
            torch.set_rng_state(checkpoint["rng"])
            self.step, self.best = checkpoint["step"], checkpoint["best_test_loss"]
            self.full_baselines = dict(checkpoint.get("full_baselines", {}))
            was = saved.total_steps(steps_per_epoch)
            finished = bool(checkpoint.get("finished", self.step >= was))  # older checkpoints: at the end means done
            schedule = Schedule.from_state(config.lr, config.warmup_steps, config.schedule,
                                           checkpoint.get("schedule", {"total_steps": was, "extensions": []}))
            if total == self.step and finished:
                raise UserError(f"run {self.resume} finished at step {self.step}; to train on, give more steps than {self.step}", "steps")
            if total < self.step:
                raise UserError(f"run {self.resume} is at step {self.step} already; give at least {self.step} steps", "steps")
            if total != schedule.end:
                previous = schedule.end
                schedule = schedule.extended(self.step, total)
                extended = Extended(self.step, previous, total, schedule.at(self.step))
            if self.run:
                self.run.truncate_metrics(checkpoint["metrics_bytes"])
        if self.run:
            self.run.save_config(config)
            if not recorded:
                RunFacts(session.data).save(self.run.path)
        if self.probe:
            self.probe.attach(session, learner.prompt, lambda: self.step)
        prompt_lock = self.probe.lock if self.probe else contextlib.nullcontext()
        start_step = self.step
        yield self.emit(Started(str(self.run.path) if self.run else "", config.model, str(frozen.device), precision,
                                len(split.train), len(split.test), total, start_step, steps_per_epoch, session.precision.reason,
                                session.data.skipped_rows))
        if extended:
            yield self.emit(extended)

        eval_pairs = split.test[: config.eval_size] if config.eval_size else split.test
        sample_pairs = split.test[: config.num_predictions]
        baseline, baseline_encoder = session.baseline_prompt()

        def evaluate(label: str, vectors: torch.Tensor, pairs: list[Pair], enc: TemplateEncoder = encoder,
                     stoppable: bool = True) -> Generator[Event, None, PromptScore]:
            score = yield from self.scored(f"scoring the {label} prompt", vectors, pairs, enc, stoppable)
            if label == "learned":
                self.best = min(self.best, score.test_loss)
            yield self.emit(Evaluation(self.step, label, score.test_loss, score.accuracy, score.n_pairs,
                                       self.best if self.best < math.inf else None))
            return score

        def readout() -> Iterator[Event]:
            if not group.is_main:
                return
            yield self.emit(Predictions(self.step, predictions(frozen, encoder, sample_pairs, learner.prompt())))
            yield self.emit(NearestTokens(self.step, nearest_tokens(learner.prompt(), frozen.embedding.weight, frozen.tokenizer,
                                                                    config.nearest_k)))
            if learner.mode == "soft":  # a hard prompt is real tokens: they read as themselves
                reading = read_prompt(frozen, learner.prompt())
                yield self.emit(Reading(self.step, reading.positions, reading.whole))

        last_save = time.monotonic()

        def save(done: bool = False) -> Iterator[Event]:
            nonlocal last_save
            last_save = time.monotonic()
            if not self.run:
                return
            path = self.run.path / "checkpoint.pt"
            event = Checkpoint(self.step, str(path))
            # the checkpoint records the log's length with its own record in it, which is written last: a
            # write cut short (a second ctrl+c is held off until it is done, a kill -9 is not) never leaves
            # a record of a checkpoint that is not there
            state = {**learner.state_dict(), "mode": config.mode, "method": config.method, "step": self.step,
                     "rng": torch.get_rng_state(), "best_test_loss": self.best, "schedule": schedule.to_state(),
                     "metrics_bytes": self.run.metrics_size() + len(self.run.encoded(event)), "precision": precision,
                     "finished": done, "full_baselines": self.full_baselines}
            with uninterrupted():
                self.run.save_checkpoint(state)
                self.run.save_prompt(learner.prompt(), {**prompt_metadata(config, self.step, precision), **learner.metadata()})
                self.emit(event)
            yield event

        def stopped() -> Iterator[Event]:
            yield from save()
            # no evaluation on the whole test set after a stop: `promptgrad eval RUN` gives it on demand
            yield self.emit(Finished(self.step, True, None, None, str(self.run.path / PROMPT) if self.run else ""))

        try:
            if start_step == 0 and not finished:
                yield from evaluate("hand-written", baseline, eval_pairs, baseline_encoder)
                yield from evaluate("untrained", learner.initial_prompt(), eval_pairs)
                if hasattr(learner, "start_events"):
                    yield from map(self.emit, learner.start_events())
                yield from readout()

            started_at, step_seconds, examples_per_s = time.perf_counter(), 0.0, 0.0
            batches, batches_epoch = [], -1
            stopping = group.any(stop.is_set(), frozen.device)
            while self.step < total and not stopping:
                t0 = time.perf_counter()
                epoch, k = divmod(self.step, steps_per_epoch)
                if epoch != batches_epoch:
                    batches, batches_epoch = epoch_batches(learner.pairs, learner.batch_size, config.seed, epoch), epoch
                rows = batches[k]
                batch = self.collate(encoder, learner.pairs, rows, group, frozen.device)
                lr = schedule.at(self.step)
                with prompt_lock:  # a probe never copies a prompt half-updated
                    loss, found = learner.step(batch, lr, self.step + 1)
                    self.step += 1
                dt = time.perf_counter() - t0
                step_seconds += dt
                rate = len(rows) / dt
                examples_per_s = rate if examples_per_s == 0 else 0.9 * examples_per_s + 0.1 * rate
                yield self.emit(Step(self.step, self.step / steps_per_epoch, loss, lr, examples_per_s,
                                     time.perf_counter() - started_at, (total - self.step) * step_seconds / (self.step - start_step)))
                yield from map(self.emit, found)
                stopping = group.any(stop.is_set(), frozen.device)  # all processes agree, or collectives would hang
                if self.step < total and not stopping:
                    if config.eval_every and self.step % config.eval_every == 0:
                        yield from evaluate("learned", learner.prompt(), eval_pairs, stoppable=not group.active)
                        yield from readout()
                    minutes = config.checkpoint_minutes
                    if ((config.checkpoint_every and self.step % config.checkpoint_every == 0)
                            or (minutes and time.monotonic() - last_save >= minutes * 60)):
                        yield from save()
            if stopping and self.step < total:
                yield from stopped()
                return

            # the end: the learned prompt, and both baselines if only a subset has scored them yet, on the whole test set
            if eval_pairs is not split.test:
                for label, vectors, enc in (("hand-written", baseline, baseline_encoder), ("untrained", learner.initial_prompt(), encoder)):
                    if label in self.full_baselines:  # an extended run measured them at its first end
                        loss_, accuracy, n = self.full_baselines[label]
                        yield self.emit(Evaluation(self.step, label, loss_, accuracy, int(n), None))
                    else:
                        score = yield from evaluate(label, vectors, split.test, enc, stoppable=not group.active)
                        self.full_baselines[label] = [score.test_loss, score.accuracy, score.n_pairs]
            final = yield from evaluate("learned", learner.prompt(), split.test, stoppable=not group.active)
        except StopRequested:
            yield from stopped()
            return
        yield from readout()
        yield from save(done=True)
        yield self.emit(Finished(self.step, False, final.test_loss, final.accuracy, str(self.run.path / PROMPT) if self.run else ""))

    @staticmethod
    def collate(encoder: TemplateEncoder, pairs: list, rows: list[int], group: Processes, device: torch.device) -> Batch:
        """This process's share of a batch (possibly no rows, when a short last batch has fewer rows than
        there are processes: that process then takes part in the collectives with nothing to add)."""
        share = group.share(rows)
        batch = encoder.collate([pairs[i] for i in (share or rows[:1])])
        if not share:
            batch = batch.map(lambda t: t[:0])
        return batch.to(device)

    def scored(self, task: str, vectors: torch.Tensor, pairs: list[Pair], encoder: TemplateEncoder,
               stoppable: bool) -> Generator[Event, None, PromptScore]:
        """A prompt's score on `pairs`, yielding Progress events on the way; a stop between batches
        raises StopRequested (not under data parallelism: the processes must finish the collective)."""
        session = self.session
        steps = scoring(session.frozen, encoder, pairs, vectors, session.eval_batch_size, session.processes)
        while True:
            try:
                done, total = next(steps)
            except StopIteration as finished:
                return finished.value
            if stoppable and self.stop.is_set():
                raise StopRequested
            now = time.monotonic()
            if now - self.last_progress >= PROGRESS_SECONDS or done == total:
                self.last_progress = now
                yield Progress(self.step, task, done, total)
