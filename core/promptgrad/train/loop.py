"""The training loop, written once: a generator of typed events that the CLI and the TUI both consume.

    for event in train(config, stop=threading.Event()):
        ...

Soft prompts (Adam on vectors) and hard prompts (PEZ, GCG, relax) run through this same loop: a
*learner* (learner.py, search/hard_learner.py) makes each step; the loop owns everything else, once:

- the run folder (run_folder.py): locked by one writer; every logged event appended to metrics.jsonl;
  checkpoints every `checkpoint_every` steps, every `checkpoint_minutes`, on a stop and at the end;
- resume: the settings that define the run come from its folder, its data and precision from its
  facts.json, metrics.jsonl is cut back to the checkpoint, and a new length extends the schedule
  without the learning rate ever jumping up; a finished run whose rate has decayed to 0 is extended
  only with a new peak for its added steps (`extend_lr`), else refused before a step is spent;
- evaluation: the baselines (each hand-written prompt, the k-shot demonstrations, the untrained prompt,
  the majority answer: baselines.py) on the evaluation subset at the start (seconds), the learned
  prompt on it every `eval_every` steps, and all of them on the whole test set at the end, each with
  its bootstrap interval (intervals.py);
- early stopping (`val_fraction`, early_stopping.py): the learned prompt scored on validation pairs
  carved from the training pairs every `eval_every` steps and at the end; the best one is the result,
  and `stop_patience` scores without a better one end training (Finished(stopped_early=True));
- the stop signal (ctrl+c, SIGTERM, SIGHUP, the TUI's stop): checked after every step and between the
  batches of an evaluation; the run then saves a checkpoint and ends with Finished(stopped=True);
- failures end the stream with one Failed event instead of an exception, so a UI consuming it stays
  up: one line for bad input and for what the machine refused, the whole traceback (also in
  traceback.txt) for a bug.

It reads top to bottom as `TrainingRun.run`: set up (folder, resume, session, learner), a first look,
the steps, a last look on the whole test set, the end.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
import traceback
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch

from promptgrad.config import TrainConfig, check_lr
from promptgrad.errors import UserError, environment_problem, peer_ended
from promptgrad.events import (
    Checkpoint,
    Evaluation,
    Event,
    Extended,
    Failed,
    Finished,
    NearestTokens,
    Predictions,
    Progress,
    Reading,
    Started,
    Step,
    Validation,
)
from promptgrad.integrations.trackers import tracked
from promptgrad.learners.learner import Learner, NonFinite, SoftLearner, training_step  # noqa: F401 (training_step: the benchmarks' step)
from promptgrad.learners.search.hard_learner import HardLearner
from promptgrad.model.distributed import Processes, processes
from promptgrad.model.models import model_source
from promptgrad.model.precision import resolve_device
from promptgrad.model.soft_prompt import SoftPrompt, start_description
from promptgrad.model.template import Batch, TemplateEncoder
from promptgrad.problem.pairs import Pair
from promptgrad.readout.answer_rule import AnswerRule
from promptgrad.readout.baselines import no_majority_reason, score_majority
from promptgrad.readout.evaluation import PromptScore, predictions, scoring
from promptgrad.readout.explain import read_prompt
from promptgrad.readout.nearest_tokens import nearest_tokens
from promptgrad.signals import uninterrupted
from promptgrad.store.run_facts import RunFacts
from promptgrad.store.run_folder import CHECKPOINT, PROMPT, RunFolder, load_checkpoint, prompt_vectors
from promptgrad.train.early_stopping import EarlyStopping
from promptgrad.train.probe import Probe
from promptgrad.train.schedule import Schedule
from promptgrad.train.session import Session, open_session

PROGRESS_SECONDS = 0.5  # Progress events come at most this often (plus the first and the last)


class StopRequested(Exception):
    """The stop signal arrived between the batches of an evaluation."""


def train(
    config: TrainConfig,
    stop: threading.Event | None = None,
    resume: str | Path | None = None,
    probe: Probe | None = None,
    extend_lr: float | None = None,
) -> Iterator[Event]:
    """Run (or resume) training, yielding events. `resume` is a run folder; `config` then holds its saved
    settings with any overrides: more steps, other evaluation or checkpoint intervals, another device.
    `extend_lr`: the added steps of a resumed run get a new peak learning rate (schedule.py's restart),
    which a finished run whose learning rate has decayed to 0 needs to learn anything more.
    `probe` (probe.py), if given, lets another thread try the prompt while the run goes on. The events
    also go to the experiment trackers of `report_to` (trackers.py), here, where every caller passes."""
    run = TrainingRun(config, stop or threading.Event(), resume, probe, extend_lr=extend_lr)
    return tracked(run.events(), config, lambda: run.config, resume is not None)


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


def prompt_metadata(config: TrainConfig, facts: RunFacts, step: int) -> dict[str, str]:
    """What someone with only prompt.safetensors needs to use it: where the model loads from, the
    template it stands in, the hand-written prompts it was compared with, which data it learned from."""
    problem = config.problem
    return {
        "model": problem.model,
        "model_source": model_source(problem.model),
        "template": problem.template,
        "prompt_len": str(problem.prompt_len),
        "baseline_text": json.dumps(problem.baseline_text),
        "init": problem.init,
        "task": problem.task,
        "data": problem.data,
        "data_sha256": facts.data.sha256,
        "step": str(step),
        "mode": config.learning.mode,
    }


def make_learner(session: Session) -> Learner:
    config, frozen, encoder = session.config, session.frozen, session.encoder
    generator = torch.Generator().manual_seed(config.learning.seed)
    if config.learning.mode == "hard":
        if session.processes.active:
            raise UserError("hard mode runs in a single process; start it without accelerate launch / torchrun", "mode")

        return HardLearner(
            frozen,
            encoder,
            session.split.train,
            session.eval_batch_size,
            generator,
            init=config.problem.init,
            search=config.search,
            gcg=config.gcg,
            lr=config.learning.lr,
        )
    initial = SoftPrompt.initial(
        config.problem.init,
        config.problem.prompt_len,
        frozen.embedding.weight,
        frozen.tokenizer,
        generator,
        prompt_vectors,
    )
    pairs = [encoder.encode(p.x, p.y) for p in session.split.train]
    return SoftLearner(frozen, initial, pairs, config.learning.batch_size, config.learning.lr, session.processes)


def uses_learning_rate(config: TrainConfig) -> bool:
    """GCG searches by exact losses and takes no learning rate; soft prompts, PEZ and relax learn by one."""
    return config.learning.mode == "soft" or config.search.method != "gcg"


def needs_new_peak(folder: RunFolder) -> bool:
    """Whether more steps for this run folder would all be taken at learning rate 0: it finished with its
    (cosine) schedule decayed to zero, and it learns by a learning rate. What a UI asks before extending."""
    checkpoint = load_checkpoint(folder.path / CHECKPOINT)
    config = folder.config()
    learning = config.learning
    schedule = Schedule.from_state(learning.lr, learning.warmup_steps, learning.schedule, checkpoint["schedule"])
    return bool(checkpoint["finished"]) and uses_learning_rate(config) and schedule.decayed(int(checkpoint["step"]))


@dataclass
class Resumed:
    """What a run folder holds to go on from: its saved settings, its facts, its checkpoint."""

    folder: RunFolder
    saved: TrainConfig
    facts: RunFacts
    checkpoint: dict


class TrainingRun:
    def __init__(
        self,
        config: TrainConfig,
        stop: threading.Event,
        resume: str | Path | None,
        probe: Probe | None = None,
        session: Session | None = None,
        extend_lr: float | None = None,
    ):
        """`session`, if given, is a model and data already set up (api.py): the run then writes no folder."""
        self.config, self.stop, self.resume, self.probe, self.session = config, stop, resume, probe, session
        self.extend_lr = extend_lr
        self.run: RunFolder | None = None  # the folder this process writes (rank 0 only)
        self.step = 0
        self.best = math.inf  # best test loss of the learned prompt so far
        self.full_baselines: dict[str, list[float]] = {}  # label -> [loss, accuracy, pairs] on the whole test set
        self.baseline_pairs: dict[
            str, list[dict]
        ] = {}  # label -> each test pair's result (pair_scores.jsonl), as scored
        self.last_progress = 0.0
        self.last_save = time.monotonic()
        self.finished = False  # resumed from the checkpoint of a run that had reached its end
        self.logging = False  # from Started on: a run refused before it began leaves its folder untouched
        self.learner: Learner | None = None  # the result, for a caller that wants the prompt itself (api.py)
        self.pair_seconds = 0.0  # seconds to score one pair, as last measured (for the ETA)
        self.early: EarlyStopping | None = None  # with a validation split (val_fraction): the best prompt on it
        self.trained: torch.Tensor | None = None  # the trained vectors, once the best on validation took their place
        self.looked_first = False  # the baselines were scored after step 1 (a stop can come before they all are)

    # ---- the stream and its failures ----------------------------------------------------------
    def events(self) -> Iterator[Event]:
        try:
            yield from self.run_all()
        except UserError as e:
            yield self.emit(Failed(self.step, str(e), user_error=True, field=e.field or ""))
        except NonFinite as e:
            bf16 = self.session is not None and self.session.facts.precision == "bf16"
            advice = f"lower lr (it is {self.config.learning.lr:g})" + (" or use precision fp32" if bf16 else "")
            yield self.emit(
                Failed(
                    self.step,
                    f"{e}; the prompt was not saved (the last checkpoint is intact); {advice}",
                    user_error=True,
                    field="lr",
                )
            )
        except Exception as e:  # the machine's doing, a peer gone, or a bug: keep the consumer up either way
            yield self.emit(self.failure(e))
        finally:
            if self.run is not None:
                self.run.release()
                self.run.remove_if_unused()

    def failure(self, e: Exception) -> Failed:
        problem = environment_problem(e)
        if problem is not None:
            return Failed(self.step, problem, user_error=True)
        if peer_ended(e):
            resume = f"; resume with: promptgrad train --resume {self.run.path}" if self.run is not None else ""
            return Failed(
                self.step,
                f"another process of this run ended, so this one cannot go on (its own output says why){resume}",
                user_error=False,
            )
        text = traceback.format_exc()  # a bug or a runtime failure (out of memory): keep its traceback
        where = ""
        if self.run is not None and self.logging:
            try:
                where = f"; traceback in {self.run.save_traceback(text)}"
            except (OSError, UserError):
                pass
        return Failed(self.step, f"{type(e).__name__}: {e}{where}", user_error=False, traceback=text)

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

    # ---- the run, top to bottom ------------------------------------------------------------------
    def run_all(self) -> Iterator[Event]:
        yield from self.set_up()
        try:
            if self.step == 0 and not self.finished and hasattr(self.learner, "start_events"):
                yield from map(self.emit, self.learner.start_events())  # the search's start is its first best
            yield from self.train_steps()
            if self.step < self.total and not self.patience_ran_out:  # the stop signal
                yield from self.stopped()
                return
            final = yield from self.last_look()
        except StopRequested:
            yield from self.stopped()
            return
        try:
            yield from self.readout()
        except StopRequested:
            pass  # the result is measured: a stop now only leaves the last readout out
        yield from self.save(done=True)
        early = self.early
        yield self.emit(
            Finished(
                self.step,
                False,
                final.test_loss,
                final.accuracy,
                self.prompt_path,
                stopped_early=self.patience_ran_out,
                best_step=early.best_step if early else None,
                accuracy_rule=self.rule.describe(),
            )
        )

    def set_up(self) -> Iterator[Event]:
        """The folder locked, what a resume goes on from, the model and data, the learner, the schedule."""
        resumed = self.open_folder()
        if self.session is None:
            yield Progress(0, f"loading data and model {self.config.problem.model}", 0, 0)
            self.session = open_session(self.config, resumed.facts if resumed else None, str(self.resume or ""))
        session, config = self.session, self.config
        if resumed and (recorded := resumed.folder.split()) is not None:
            session.split = recorded  # the pairs the run started with (the validation ones among them), as recorded
        self.learner = make_learner(session)
        if session.split.validation:
            self.early = EarlyStopping(config.learning.stop_patience)
        self.steps_per_epoch = math.ceil(len(self.learner.pairs) / self.learner.batch_size)
        self.total = config.total_steps(self.steps_per_epoch)
        learning = config.learning
        self.schedule = Schedule(learning.lr, learning.warmup_steps, learning.schedule, self.total)
        extended = self.restore(resumed) if resumed else None
        if self.run:
            self.run.save_config(config)
            if not resumed:
                self.run.save_facts(session.facts)
                self.run.save_split(session.split)
        if self.probe:
            self.probe.attach(session, self.learner.prompt, lambda: self.step)
        self.start_step = self.step
        facts, split = session.facts, session.split
        yield self.emit(
            Started(
                str(self.run.path) if self.run else "",
                config.problem.model,
                str(session.frozen.device),
                facts.precision,
                len(split.train),
                len(split.test),
                self.total,
                self.start_step,
                self.steps_per_epoch,
                facts.precision_reason,
                facts.data.skipped_rows,
                n_validation=len(split.validation),
                no_majority=no_majority_reason(split.train),
            )
        )
        if extended:
            yield self.emit(extended)

    def open_folder(self) -> Resumed | None:
        """Lock the folder first (rank 0 only), so a second writer fails at once; on resume, what it holds."""
        self.config = config = self.config.resolved()  # empty settings from the task; the same files from any directory
        if self.extend_lr is not None and not self.resume:
            raise UserError(
                "extend_lr gives the added steps of a resumed run a new peak; a new run takes lr", "extend_lr"
            )
        if self.session is not None:
            return None  # api.py: a model already loaded, no folder
        group = processes(resolve_device(config.machine.device).type)
        if group.is_main:
            if self.resume:
                self.run = RunFolder.open_for_writing(self.resume)
            else:
                self.run = RunFolder.create(
                    config.machine.runs_dir, config.machine.name or datetime.now().strftime("%Y%m%d-%H%M%S")
                )
        if not self.resume:
            return None
        folder = RunFolder.open(self.resume)
        saved, facts = folder.config(), RunFacts.load(folder.path)
        if config.machine.precision in ("auto", facts.precision):  # what the run decided, asked for again: no change
            config = config.replace(precision=saved.machine.precision)
        config.check_resumable_as(saved, str(folder.path))  # what defines the run comes from its folder
        self.config = config
        checkpoint = load_checkpoint(folder.path / CHECKPOINT)
        if checkpoint["mode"] != config.learning.mode or (
            config.learning.mode == "hard" and checkpoint["method"] != config.search.method
        ):
            held = f"hard {checkpoint['method']}" if checkpoint["mode"] == "hard" else "soft"
            raise UserError(
                f"run {folder.path} holds a {held} checkpoint; resume it with the mode and method it was started with",
                "method",
            )
        return Resumed(folder, saved, facts, checkpoint)

    def restore(self, resumed: Resumed) -> Extended | None:
        """Go on from the checkpoint: the learner's and the RNG's state, the step, the schedule (extended,
        never jumping up, when the run was given another length); metrics.jsonl cut back to match."""
        checkpoint = resumed.checkpoint
        self.learner.load_state_dict(checkpoint)
        torch.set_rng_state(checkpoint["rng"])
        self.step, self.best = checkpoint["step"], checkpoint["best_test_loss"]
        self.full_baselines = dict(checkpoint["full_baselines"])
        if "untrained " in self.full_baselines:  # a checkpoint from before the start prompt was named: the same prompt
            self.full_baselines.setdefault(
                f"untrained {start_description(self.config.problem.init)}", self.full_baselines.pop("untrained ")
            )
        self.baseline_pairs = dict(
            checkpoint.get("baseline_pairs", {})
        )  # older checkpoints: none (re-scored at the end)
        self.finished = bool(checkpoint["finished"])
        self.looked_first = bool(checkpoint.get("looked_first", True))  # older checkpoints: taken as scored
        if self.early is not None and "early_stopping" in checkpoint:
            self.early.load_state_dict(checkpoint["early_stopping"])
            if self.finished and self.early.ran_out:
                early = self.early
                raise UserError(
                    f"run {self.resume} stopped early at step {self.step}: its validation loss was not lower for "
                    f"{early.without_gain} scores after step {early.best_step}; to train on, give a stop_patience "
                    f"above {early.without_gain} (0: never stop early)",
                    "stop_patience",
                )
        learning = self.config.learning
        self.schedule = Schedule.from_state(
            learning.lr, learning.warmup_steps, learning.schedule, checkpoint["schedule"]
        )
        if self.total == self.step and self.finished:
            raise UserError(
                f"run {self.resume} finished at step {self.step}; to train on, give more steps than {self.step}",
                "steps",
            )
        if self.total < self.step:
            raise UserError(
                f"run {self.resume} is at step {self.step} already; give at least {self.step} steps", "steps"
            )
        extended = (
            self.extend(self.schedule.end) if self.total != self.schedule.end or self.extend_lr is not None else None
        )
        if self.run:
            self.run.truncate_metrics(checkpoint["metrics_bytes"])
        return extended

    def extend(self, previous: int) -> Extended:
        """The schedule over a new length: going on from the rate where the run is, or, with extend_lr, a
        new peak for the added steps. A run whose rate has decayed to 0 (a finished cosine run) needs one:
        its added steps would otherwise all be taken at lr 0 and leave the prompt as it is, so that is
        refused before any is spent, naming what helps."""
        learning, where = self.config.learning, self.resume
        if self.extend_lr is not None:
            if problem := check_lr(self.extend_lr):
                raise UserError(problem.replace("lr must", "extend_lr must", 1), "extend_lr")
            if not uses_learning_rate(self.config):
                raise UserError(
                    f"run {where} searches by GCG, which takes no learning rate: leave extend_lr out", "extend_lr"
                )
            if self.total == previous:
                raise UserError(
                    f"extend_lr gives added steps a new peak, but run {where} is given none (it ends at step "
                    f"{previous}): give more steps than {previous} with it, or leave it out to go on as it is",
                    "extend_lr",
                )
            self.schedule = self.schedule.restarted(self.step, self.total, self.extend_lr, learning.warmup_steps)
            last = self.schedule.extensions[-1]
            return Extended(self.step, previous, self.total, last.lr, last.warmup, new_peak=True)
        if self.finished and uses_learning_rate(self.config) and self.schedule.decayed(self.step):
            raise UserError(
                f"run {where} finished at step {self.step} with its learning rate decayed to 0 ({learning.schedule} "
                f"schedule), so more steps would not change its prompt; either give the added steps a new peak "
                f"learning rate (--extend-lr LR, e.g. {learning.lr:g}), or branch: a new run from its prompt "
                f"(--init run:{where})",
                "steps",
            )
        self.schedule = self.schedule.extended(self.step, self.total)
        return Extended(self.step, previous, self.total, self.schedule.at(self.step))

    def first_look(self) -> Iterator[Event]:
        """Right after step 1 (so that training starts within seconds, however slow the machine): each
        baseline (hand-written, k-shot, untrained, majority) on the evaluation subset, and a readout."""
        stoppable = not self.session.processes.active
        for label, text, vectors, encoder in self.baseline_prompts():
            yield from self.evaluate(label, vectors, self.eval_pairs, encoder, stoppable, text)
        if (majority := self.majority(self.eval_pairs)) is not None:
            yield self.emit(majority)
        self.looked_first = True
        yield from self.readout()

    def baseline_prompts(self) -> list[tuple[str, str, torch.Tensor, TemplateEncoder]]:
        """(label, text, vectors, encoder) of each baseline that is scored as a prompt: every hand-written
        one, the k-shot one (baselines.py), the untrained one."""
        session = self.session
        prompts = [("hand-written", text, vectors, encoder) for text, vectors, encoder in session.baseline_prompts()]
        if (k_shot := session.k_shot_prompt()) is not None:
            prompts.append(("k-shot", *k_shot))
        # "untrained" stays the label (old folders, the TUI's chart pick the row by it); the text says what it is
        start = start_description(self.config.problem.init)
        return [*prompts, ("untrained", start, self.learner.initial_prompt(), session.encoder)]

    def majority(self, pairs: list[Pair]) -> Evaluation | None:
        """The majority answer's accuracy on `pairs` (no language model: no loss, and instant); None where no
        answer repeats in the training pairs (Started.no_majority said why)."""
        score = score_majority(self.session.split.train, pairs, self.rule)
        if score is None:
            return None
        interval = score.accuracy_interval
        return Evaluation(
            self.step,
            "majority",
            None,
            score.accuracy,
            score.n_pairs,
            self.best if self.best < math.inf else None,
            score.answer,
            accuracy_low=interval.low,
            accuracy_high=interval.high,
        )

    def train_steps(self) -> Iterator[Event]:
        """Step until the end or a stop; evaluations, readouts and checkpoints on their intervals."""
        session, learner, watch = self.session, self.learner, self.config.watch
        group, device = session.processes, session.frozen.device
        prompt_lock = self.probe.lock if self.probe else contextlib.nullcontext()
        started_at, step_seconds, examples_per_s = time.perf_counter(), 0.0, 0.0
        batches, batches_epoch = [], -1
        look_first = not self.looked_first and not self.finished
        if look_first and self.step > 0:  # stopped before its baselines were all scored: score them now, at this step
            look_first = False
            yield from self.first_look()
        stopping = group.any(self.stop.is_set(), device)
        if self.validation_owed(watch.eval_every) and not stopping:
            yield from self.validate()  # a stop interrupted this step's score: take it before going on
        while self.step < self.total and not stopping and not self.patience_ran_out:
            t0 = time.perf_counter()
            epoch, k = divmod(self.step, self.steps_per_epoch)
            if epoch != batches_epoch:
                batches, batches_epoch = (
                    epoch_batches(learner.pairs, learner.batch_size, self.config.learning.seed, epoch),
                    epoch,
                )
            rows = batches[k]
            batch = self.collate(session.encoder, learner.pairs, rows, group, device)
            lr = self.schedule.at(self.step)
            with prompt_lock:  # a probe never copies a prompt half-updated
                loss, found = learner.step(batch, lr, self.step + 1)
                self.step += 1
            dt = time.perf_counter() - t0
            step_seconds += dt
            examples_per_s = len(rows) / dt if examples_per_s == 0 else 0.9 * examples_per_s + 0.1 * len(rows) / dt
            eta = self.seconds_to_go(step_seconds / (self.step - self.start_step), learner.batch_size)
            yield self.emit(
                Step(
                    self.step,
                    self.step / self.steps_per_epoch,
                    loss,
                    lr,
                    examples_per_s,
                    time.perf_counter() - started_at,
                    eta,
                )
            )
            yield from map(self.emit, found)
            if look_first:
                look_first = False
                yield from self.first_look()
            stopping = group.any(self.stop.is_set(), device)  # all processes agree, or collectives would hang
            if self.step < self.total and not stopping:
                if watch.eval_every and self.step % watch.eval_every == 0:
                    if self.early:
                        yield from self.validate()
                    if not self.patience_ran_out:  # else the end scores the kept prompt on the whole test set
                        yield from self.evaluate(
                            "learned", learner.prompt(), self.eval_pairs, stoppable=not group.active
                        )
                        yield from self.readout()
                minutes = watch.checkpoint_minutes
                if (watch.checkpoint_every and self.step % watch.checkpoint_every == 0) or (
                    minutes and time.monotonic() - self.last_save >= minutes * 60
                ):
                    yield from self.save()
        if self.early and (self.step == self.total or self.patience_ran_out):
            if self.early.scored_step != self.step:
                yield from self.validate()  # the last prompt is a candidate too
            self.keep_best()

    @property
    def patience_ran_out(self) -> bool:
        return self.early is not None and self.early.ran_out

    def validation_owed(self, eval_every: int) -> bool:
        """A resumed run whose stop came while this step's prompt was being scored on the validation pairs
        (or before it was) owes that score: without it, it could keep another prompt than an uninterrupted run."""
        early = self.early
        return (
            early is not None
            and 0 < self.step < self.total
            and bool(eval_every)
            and self.step % eval_every == 0
            and early.scored_step != self.step
        )

    def validate(self) -> Iterator[Event]:
        """The learned prompt on the validation pairs (never the test pairs): kept if it is the best so far."""
        early, prompt, group = self.early, self.learner.prompt(), self.session.processes
        score = yield from self.scored(
            "scoring the learned prompt on the validation pairs",
            prompt,
            self.session.split.validation,
            self.session.encoder,
            stoppable=not group.active,
        )
        early.record(self.step, score.test_loss, prompt)
        yield self.emit(
            Validation(
                self.step,
                score.test_loss,
                score.accuracy,
                score.n_pairs,
                early.best_loss,
                early.best_step,
                early.without_gain,
                early.ran_out,
            )
        )

    def keep_best(self) -> None:
        """The best prompt on validation becomes the learner's, so the result is it: what the last look tests,
        the readout shows, prompt.safetensors holds and api.py returns. The trained vectors are kept for
        the checkpoint, which an extended run goes on from."""
        if self.early.best_prompt is None:
            return
        self.trained = self.learner.prompt().detach().cpu().clone()
        with self.probe.lock if self.probe else contextlib.nullcontext():  # a probe never copies a prompt half-replaced
            self.learner.set_prompt(self.early.best_prompt)

    def seconds_to_go(self, step_seconds: float, batch_size: int) -> float:
        """The steps still to take, and the evaluations still to come: those on the subset (this step's
        too: it is asked for right after the step), the validation pairs' at each of them and once more at
        the end, and at the end the learned prompt (and the baselines not yet measured there) on the whole
        test set. Scoring a pair is timed as it happens; until then it is taken as a third of training one
        (a forward pass only)."""
        pair_seconds = self.pair_seconds or step_seconds / batch_size / 3
        watch, n_test = self.config.watch, len(self.session.split.test)
        subset_looks = sum(1 for k in range(self.step, self.total) if watch.eval_every and k % watch.eval_every == 0)
        last = n_test
        if self.eval_pairs is not self.session.split.test:  # the majority answer costs nothing
            k_shot = 1 if self.session.k_shot_demonstrations() else 0
            unmeasured = 1 + len(self.config.problem.baseline_text) + k_shot - len(self.full_baselines)
            last += unmeasured * n_test
        pairs = subset_looks * len(self.eval_pairs) + last
        if self.early:
            pairs += (subset_looks + 1) * len(self.session.split.validation)
        return (self.total - self.step) * step_seconds + pairs * pair_seconds

    def last_look(self) -> Generator[Event, None, PromptScore]:
        """The learned prompt on the whole test set, and the baselines too if only a subset scored them."""
        session, stoppable = self.session, not self.session.processes.active
        test = session.split.test
        if self.eval_pairs is not test:
            for label, text, vectors, encoder in self.baseline_prompts():
                key = f"{label} {text}"
                if key in self.full_baselines:  # an extended run measured them at its first end
                    # [loss, accuracy, pairs, loss_low, loss_high, accuracy_low, accuracy_high]; a checkpoint
                    # written before intervals existed holds the first three
                    loss, accuracy, n, *bounds = self.full_baselines[key]
                    yield self.emit(Evaluation(self.step, label, loss, accuracy, int(n), None, text, *bounds))
                else:
                    score = yield from self.evaluate(label, vectors, test, encoder, stoppable, text)
                    self.full_baselines[key] = [
                        score.test_loss,
                        score.accuracy,
                        score.n_pairs,
                        score.loss_interval.low,
                        score.loss_interval.high,
                        score.accuracy_interval.low,
                        score.accuracy_interval.high,
                    ]
            if (majority := self.majority(test)) is not None:
                yield self.emit(majority)
        learned = yield from self.evaluate("learned", self.learner.prompt(), test, stoppable=stoppable)
        yield from self.save_pair_scores(learned, stoppable)
        return learned

    def save_pair_scores(self, learned: PromptScore, stoppable: bool) -> Iterator[Event]:
        """pair_scores.jsonl: each test pair's answer, rightness and loss under the learned prompt, each
        baseline scored as a prompt and the majority answer, one JSON object a line, labelled as the
        Evaluation events are ({"prompt", "text", "x", "y", "answer", "right", "loss", "tokens"}). A
        baseline's pairs are kept (in the checkpoint too) when it is scored on the whole test set; one
        measured by a checkpoint older than that is scored again here (the same numbers: scoring is
        deterministic)."""
        session, test = self.session, self.session.split.test
        if self.run is None and session.processes.is_main:
            return  # no folder to write to (api.py); under data parallelism the other ranks score alongside rank 0
        for label, text, vectors, encoder in self.baseline_prompts():
            if f"{label} {text}" not in self.baseline_pairs:
                score = yield from self.scored(
                    f"scoring the {label} prompt's answers", vectors, test, encoder, stoppable
                )
                self.keep_pairs(label, text, score)
        if self.run is None:
            return
        majority = score_majority(session.split.train, test, self.rule)
        rows = [
            {"prompt": label, "text": text, **pair}
            for label, text, _, _ in self.baseline_prompts()
            for pair in self.baseline_pairs[f"{label} {text}"]
        ]
        rows += [{"prompt": "learned", "text": "", **vars(pair)} for pair in learned.pairs]
        if majority is not None:  # None where no answer repeats (no majority row, Started.no_majority)
            rows += [
                {
                    "prompt": "majority",
                    "text": majority.answer,
                    "x": p.x,
                    "y": p.y,
                    "answer": majority.answer,
                    "right": right,
                    "loss": None,
                    "tokens": 0,
                }
                for p, right in zip(test, majority.right)
            ]
        self.run.save_pair_scores(rows)

    def keep_pairs(self, label: str, text: str, score: PromptScore) -> None:
        self.baseline_pairs[f"{label} {text}"] = [vars(pair) for pair in score.pairs]

    @property
    def rule(self) -> AnswerRule:
        """The accuracy rule the run's settings declare ([scoring], answer_rule.py)."""
        return AnswerRule.of(self.config)

    def stopped(self) -> Iterator[Event]:
        yield from self.save()
        # no evaluation on the whole test set after a stop: `promptgrad eval RUN` gives it on demand
        yield self.emit(Finished(self.step, True, None, None, self.prompt_path))

    # ---- the pieces -------------------------------------------------------------------------------
    @property
    def eval_pairs(self) -> list[Pair]:
        test, size = self.session.split.test, self.config.watch.eval_size
        return test[:size] if size else test

    @property
    def prompt_path(self) -> str:
        return str(self.run.path / PROMPT) if self.run else ""

    def evaluate(
        self,
        label: str,
        vectors: torch.Tensor,
        pairs: list[Pair],
        encoder: TemplateEncoder | None = None,
        stoppable: bool = True,
        text: str = "",
    ) -> Generator[Event, None, PromptScore]:
        what = f"{label} prompt {text!r}" if text else f"{label} prompt"
        score = yield from self.scored(
            f"scoring the {what}", vectors, pairs, encoder or self.session.encoder, stoppable
        )
        if label == "learned":
            self.best = min(self.best, score.test_loss)
        elif pairs is self.session.split.test:  # the whole test set: its pairs go to pair_scores.jsonl at the end
            self.keep_pairs(label, text, score)
        yield self.emit(
            Evaluation(
                self.step,
                label,
                score.test_loss,
                score.accuracy,
                score.n_pairs,
                self.best if self.best < math.inf else None,
                text,
                score.loss_interval.low,
                score.loss_interval.high,
                score.accuracy_interval.low,
                score.accuracy_interval.high,
            )
        )
        return score

    def readout(self) -> Iterator[Event]:
        """What the prompt does and is like now: sample predictions, nearest tokens, the model's reading;
        each part counted, and a stop heard between them."""
        session, prompt = self.session, self.learner.prompt()
        if not session.processes.is_main:
            return
        frozen, watch = session.frozen, self.config.watch
        parts = 3 if self.learner.mode == "soft" else 2  # a hard prompt is real tokens: they read as themselves
        samples = session.split.test[: watch.num_predictions]
        yield Progress(self.step, "reading out the prompt: sample predictions", 0, parts)
        yield self.emit(Predictions(self.step, predictions(frozen, session.encoder, samples, prompt, self.rule)))
        self.check_stop()
        yield Progress(self.step, "reading out the prompt: nearest tokens", 1, parts)
        yield self.emit(
            NearestTokens(self.step, nearest_tokens(prompt, frozen.embedding.weight, frozen.tokenizer, watch.nearest_k))
        )
        if parts == 3:
            self.check_stop()
            yield Progress(self.step, "reading out the prompt: what the model reads in it", 2, parts)
            reading = read_prompt(frozen, prompt)
            yield self.emit(Reading(self.step, reading.positions, reading.whole))

    def check_stop(self) -> None:
        """Between the parts of a phase: a stop asked for is acted on now (not under data parallelism,
        where the processes must go on together)."""
        if self.stop.is_set() and not self.session.processes.active:
            raise StopRequested

    def save(self, done: bool = False) -> Iterator[Event]:
        self.last_save = time.monotonic()
        if not self.run:
            return
        event = Checkpoint(self.step, str(self.run.path / CHECKPOINT))
        # the checkpoint records the log's length with its own record in it, which is written last: a
        # write cut short (a second ctrl+c is held off until it is done, a kill -9 is not) never leaves
        # a record of a checkpoint that is not there
        state = {
            **self.learner.state_dict(),
            "mode": self.config.learning.mode,
            "method": self.config.search.method,
            "step": self.step,
            "rng": torch.get_rng_state(),
            "best_test_loss": self.best,
            "schedule": self.schedule.to_state(),
            "metrics_bytes": self.run.metrics_size() + len(self.run.encoded(event)),
            "finished": done,
            "full_baselines": self.full_baselines,
            "looked_first": self.looked_first,
            "baseline_pairs": self.baseline_pairs,
        }
        result = self.learner.prompt()
        metadata = {**prompt_metadata(self.config, self.session.facts, self.step), **self.learner.metadata()}
        if self.early:  # the result so far is the best prompt on validation; training goes on from the trained one
            state["early_stopping"] = self.early.state_dict()
            if self.trained is not None:
                state["prompt"] = self.trained
            if self.early.best_prompt is not None:
                result = self.early.best_prompt
                metadata.update(best_step=str(self.early.best_step), validation_loss=repr(self.early.best_loss))
        with uninterrupted():
            self.run.save_checkpoint(state)
            self.run.save_prompt(result, metadata)
            self.emit(event)
        yield event

    @staticmethod
    def collate(
        encoder: TemplateEncoder, pairs: list, rows: list[int], group: Processes, device: torch.device
    ) -> Batch:
        """This process's share of a batch (possibly no rows, when a short last batch has fewer rows than
        there are processes: that process then takes part in the collectives with nothing to add)."""
        share = group.share(rows)
        batch = encoder.collate([pairs[i] for i in (share or rows[:1])])
        if not share:
            batch = batch.map(lambda t: t[:0])
        return batch.to(device)

    def scored(
        self, task: str, vectors: torch.Tensor, pairs: list[Pair], encoder: TemplateEncoder, stoppable: bool
    ) -> Generator[Event, None, PromptScore]:
        """A prompt's score on `pairs`, yielding Progress events on the way; a stop between batches
        raises StopRequested (not under data parallelism: the processes must finish the collective)."""
        session = self.session
        steps = scoring(session.frozen, encoder, pairs, vectors, session.eval_batch_size, session.processes, self.rule)
        started = time.perf_counter()
        while True:
            try:
                done, total = next(steps)
            except StopIteration as finished:
                self.pair_seconds = (time.perf_counter() - started) / max(1, len(pairs))
                return finished.value
            if stoppable and self.stop.is_set():
                raise StopRequested
            now = time.monotonic()
            if now - self.last_progress >= PROGRESS_SECONDS or done == total:
                self.last_progress = now
                yield Progress(self.step, task, done, total)
