"""The training loop, written once: a generator of typed events that the CLI and the TUI both consume.

    for event in train(config, stop=threading.Event()):
        ...

It loads data and model, evaluates the hand-written and the untrained prompt, then runs Adam on the
soft prompt alone. Every event is also appended to the run folder's metrics.jsonl. Setting `stop`
finishes the current step, saves a checkpoint and the prompt, and ends with Finished(stopped=True).
Errors end the stream with Failed instead of an exception, so a UI consuming it stays up.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch

from promptgrad.config import TrainConfig
from promptgrad.distributed import Processes, processes
from promptgrad.errors import UserError
from promptgrad.evaluation import predictions, score_prompt
from promptgrad.events import Checkpoint, Evaluation, Event, Failed, Finished, NearestTokens, Predictions, Started, Step
from promptgrad.models import FrozenModel, load_model
from promptgrad.nearest_tokens import nearest_tokens
from promptgrad.objective import target_loss_sum
from promptgrad.pairs import Split, load_pairs, split_pairs
from promptgrad.precision import DTYPES, resolve_device, resolve_precision
from promptgrad.run_folder import RunFolder
from promptgrad.schedule import learning_rate
from promptgrad.soft_prompt import SoftPrompt
from promptgrad.template import Batch, Template, TemplateEncoder


@dataclass
class Session:
    """What the loop has set up; shared with `promptgrad eval/predict` so they build it the same way."""

    config: TrainConfig
    split: Split
    frozen: FrozenModel
    encoder: TemplateEncoder
    precision: str
    processes: Processes = Processes()

    def baseline_prompt(self) -> tuple[torch.Tensor, TemplateEncoder]:
        """The hand-written prompt's embeddings, and an encoder with room for exactly its tokens."""
        ids = self.frozen.tokenizer(self.config.baseline_text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise UserError(f"baseline_text {self.config.baseline_text!r} encodes to no tokens", "baseline_text")
        with torch.no_grad():
            vectors = self.frozen.embedding(torch.tensor(ids, device=self.frozen.device)).float()
        return vectors, TemplateEncoder(self.encoder.template, self.frozen.tokenizer, len(ids))

    @property
    def eval_batch_size(self) -> int:
        return max(64, self.config.batch_size * 2)


def open_session(config: TrainConfig) -> Session:
    device = resolve_device(config.device)
    group = processes(device.type)
    if group.active and config.batch_size < group.world_size:
        raise UserError(f"batch_size {config.batch_size} is smaller than the {group.world_size} processes sharing it", "batch_size")
    device = resolve_device(config.device, group.local_rank)
    precision = resolve_precision(config.precision, device)
    split = split_pairs(load_pairs(config.data, config.x_column, config.y_column), config.test_fraction, config.seed, config.train_size)
    frozen = load_model(config.model, device, DTYPES[precision], config.device_map)
    encoder = TemplateEncoder(Template.parse(config.template), frozen.tokenizer, config.prompt_len)
    return Session(config, split, frozen, encoder, precision, group)


def prompt_metadata(config: TrainConfig, step: int, precision: str) -> dict[str, str]:
    return {"model": config.model, "template": config.template, "prompt_len": str(config.prompt_len),
            "init": config.init, "step": str(step), "precision": precision}


def epoch_batches(pairs: list, config: TrainConfig, epoch: int) -> list[list[int]]:
    """The batches of one epoch: a seeded shuffle, then within windows of 16 batches, examples of
    similar length together (less padding), then the batches shuffled again. A pure function of
    (seed, epoch), so a resumed run sees exactly the batches it would have seen."""
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
    order = torch.randperm(len(pairs), generator=generator).tolist()
    window = config.batch_size * 16
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: len(pairs[i].context) + len(pairs[i].target))
        batches += [chunk[j : j + config.batch_size] for j in range(0, len(chunk), config.batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def training_step(frozen: FrozenModel, batch: Batch, vectors: torch.Tensor, optimizer: torch.optim.Optimizer,
                  group: Processes = Processes()) -> float:
    """One Adam step on the prompt for one (per-process share of a) batch; returns the batch's mean loss.
    The benchmarks time exactly this function."""
    loss_sum, n_tokens = target_loss_sum(frozen, batch, vectors)
    # divide by the tokens of the whole global batch, so that summing the processes' gradients
    # gives exactly the gradient of the mean loss a single process would compute
    (global_tokens,) = group.sum([n_tokens], frozen.device)
    optimizer.zero_grad(set_to_none=True)
    (loss_sum / global_tokens).backward()
    group.sum_(vectors.grad)
    optimizer.step()
    (loss_value,) = group.sum([loss_sum.item() / global_tokens], frozen.device)
    return loss_value


def train(config: TrainConfig, stop: threading.Event | None = None, resume: str | Path | None = None) -> Iterator[Event]:
    """Run (or resume) training, yielding events. `resume` is a run folder; `config` then holds its
    saved settings with any overrides (more steps, say)."""
    if config.mode == "hard":  # discrete search has its own loop over the same events
        from promptgrad.hard_search import search

        yield from search(config, stop, resume)
        return
    yield from logged_events(lambda progress: _events(config, stop or threading.Event(), resume, progress))


def logged_events(events: Callable[[dict], Iterator[Event]]) -> Iterator[Event]:
    """Pass a loop's events on, append each to the run folder's metrics.jsonl once the loop has set
    `progress["run"]`, and turn any error into a final Failed event, so a UI consuming it stays up.
    Shared by the soft loop here and the discrete search (hard_search.py)."""
    progress = {"step": 0, "run": None}

    def logged(event: Event) -> Event:
        if progress["run"] is not None:
            progress["run"].append(event)
        return event

    try:
        for event in events(progress):
            yield logged(event)
    except UserError as e:
        yield logged(Failed(progress["step"], str(e), user_error=True))
    except Exception as e:  # a runtime failure (out of memory, NaN): report it, don't crash the consumer
        yield logged(Failed(progress["step"], f"{type(e).__name__}: {e}", user_error=False))


def _events(config: TrainConfig, stop: threading.Event, resume: str | Path | None, progress: dict) -> Iterator[Event]:
    run = RunFolder.open(resume) if resume else None
    checkpoint = run.load_checkpoint() if run else None
    session = open_session(config)
    frozen, encoder, split, group = session.frozen, session.encoder, session.split, session.processes
    train_pairs = [encoder.encode(p.x, p.y) for p in split.train]
    eval_pairs = split.test[: config.eval_size] if config.eval_size else split.test
    sample_pairs = split.test[: config.num_predictions]

    prompt = SoftPrompt.initial(
        config.init, config.prompt_len, frozen.embedding.weight, frozen.tokenizer, torch.Generator().manual_seed(config.seed)
    ).to(frozen.device)
    optimizer = torch.optim.Adam(prompt.parameters(), lr=config.lr)
    steps_per_epoch = math.ceil(len(train_pairs) / config.batch_size)
    total_steps = math.ceil(config.epochs * steps_per_epoch) if config.epochs else config.steps
    start_step, best = 0, math.inf
    if checkpoint:
        if checkpoint.get("mode", "soft") != "soft" or "prompt" not in checkpoint:
            raise UserError(f"{resume} holds a discrete-prompt checkpoint; resume it with --mode hard")
        if tuple(checkpoint["prompt"].shape) != tuple(prompt.vectors.shape):
            raise UserError(f"checkpoint prompt has shape {tuple(checkpoint['prompt'].shape)} but the config asks for {tuple(prompt.vectors.shape)}; keep model and prompt_len as they were")
        with torch.no_grad():
            prompt.vectors.copy_(checkpoint["prompt"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        torch.set_rng_state(checkpoint["rng"])
        start_step, best = checkpoint["step"], checkpoint["best_test_loss"]
        if group.is_main:
            run.save_config(config)
    elif group.is_main:
        name = config.name or datetime.now().strftime("%Y%m%d-%H%M%S")
        run = RunFolder.create(config.runs_dir, name, config)
    if not group.is_main:  # only rank 0 writes the run folder; the others compute and stay quiet
        run = None
    progress["run"], progress["step"] = run, start_step
    yield Started(str(run.path) if run else "", config.model, str(frozen.device), session.precision, len(split.train), len(split.test),
                  total_steps, start_step, steps_per_epoch)

    def evaluate(step: int, label: str, vectors: torch.Tensor, pairs, enc: TemplateEncoder = encoder) -> Iterator[Event]:
        nonlocal best
        score = score_prompt(frozen, enc, pairs, vectors, session.eval_batch_size, group)
        if label == "learned":
            best = min(best, score.test_loss)
        yield Evaluation(step, label, score.test_loss, score.accuracy, score.n_pairs, best if best < math.inf else None)

    def readout(step: int) -> Iterator[Event]:
        if not group.is_main:
            return
        yield Predictions(step, predictions(frozen, encoder, sample_pairs, prompt.vectors))
        yield NearestTokens(step, nearest_tokens(prompt.vectors, frozen.embedding.weight, frozen.tokenizer, config.nearest_k))

    def save(step: int) -> Iterator[Event]:
        if not group.is_main:
            return
        state = {"step": step, "prompt": prompt.vectors.detach().cpu(), "optimizer": optimizer.state_dict(),
                 "rng": torch.get_rng_state(), "best_test_loss": best}
        path = run.save_checkpoint(state)
        run.save_prompt(prompt.vectors, prompt_metadata(config, step, session.precision))
        yield Checkpoint(step, str(path))

    if start_step == 0:
        baseline, baseline_encoder = session.baseline_prompt()
        yield from evaluate(0, "hand-written", baseline, split.test, baseline_encoder)
        yield from evaluate(0, "untrained", prompt.vectors, split.test)
        yield from readout(0)

    started_at, step_seconds, examples_per_s = time.perf_counter(), 0.0, 0.0
    step, batches_epoch = start_step, -1
    stopping = group.any(stop.is_set(), frozen.device)
    while step < total_steps and not stopping:
        t0 = time.perf_counter()
        epoch, k = divmod(step, steps_per_epoch)
        if epoch != batches_epoch:
            batches, batches_epoch = epoch_batches(train_pairs, config, epoch), epoch
        batch = encoder.collate([train_pairs[i] for i in group.share(batches[k])]).to(frozen.device)
        lr = learning_rate(step, total_steps, config.lr, config.warmup_steps, config.schedule)
        for param_group in optimizer.param_groups:
            param_group["lr"] = lr
        loss_value = training_step(frozen, batch, prompt.vectors, optimizer, group)
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"training loss became {loss_value} at step {step + 1}; lower --lr or use --precision fp32")
        step += 1
        progress["step"] = step
        dt = time.perf_counter() - t0
        step_seconds += dt
        rate = len(batch.input_ids) * group.world_size / dt
        examples_per_s = rate if examples_per_s == 0 else 0.9 * examples_per_s + 0.1 * rate
        yield Step(step, step / steps_per_epoch, loss_value, lr, examples_per_s,
                   time.perf_counter() - started_at, (total_steps - step) * step_seconds / (step - start_step))
        stopping = group.any(stop.is_set(), frozen.device)  # all processes agree, or collectives would hang
        if step < total_steps and not stopping:
            if config.eval_every and step % config.eval_every == 0:
                yield from evaluate(step, "learned", prompt.vectors, eval_pairs)
                yield from readout(step)
            if config.checkpoint_every and step % config.checkpoint_every == 0:
                yield from save(step)

    if stopping and step < total_steps:
        yield from save(step)
        # no evaluation on the whole test set after a stop: `promptgrad eval RUN` gives it on demand
        yield Finished(step, True, None, None, str(run.path / "prompt.safetensors") if run else "")
        return
    final = score_prompt(frozen, encoder, split.test, prompt.vectors, session.eval_batch_size, group)
    best = min(best, final.test_loss)
    yield Evaluation(step, "learned", final.test_loss, final.accuracy, final.n_pairs, best)
    yield from readout(step)
    yield from save(step)
    yield Finished(step, False, final.test_loss, final.accuracy, str(run.path / "prompt.safetensors") if run else "")
