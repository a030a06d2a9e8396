"""The hard-prompt search loop: find real tokens for `{prompt}`, as a generator of the training loop's events.

    for event in search(config, stop=threading.Event()):
        ...

It yields what `training.train` yields (Started, Step, Evaluation, Predictions, NearestTokens,
Checkpoint, Finished, Failed) plus HardPromptFound whenever a better prompt turns up, so the CLI and
the TUI show the prompt changing live. The method (`config.method`) proposes a discrete prompt each
step: PEZ (pez.py), GCG (gcg.py) or the softmax relaxation baseline (relax.py). Every proposal that
survives the round trip is scored on a held-out slice of the *training* pairs; the best one so far is
the result. The test set only reports, it never chooses.

The run folder is the soft loop's: prompt.safetensors holds the found tokens' embeddings, with
`hard_prompt_ids` (a JSON list) and `hard_prompt_text` in its metadata.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import torch

from promptgrad.config import TrainConfig
from promptgrad.errors import UserError
from promptgrad.evaluation import predictions, score_prompt
from promptgrad.events import (Checkpoint, Evaluation, Event, Finished, HardPromptFound, NearestTokens,
                               Predictions, Started, Step)
from promptgrad.gcg import GCG
from promptgrad.models import FrozenModel
from promptgrad.nearest_tokens import nearest_tokens
from promptgrad.pez import PEZ
from promptgrad.projection import Projection, RoundTrip, allowed_tokens, decode, token_texts
from promptgrad.relax import Relaxation
from promptgrad.run_folder import RunFolder
from promptgrad.schedule import learning_rate
from promptgrad.soft_prompt import SoftPrompt
from promptgrad.training import Session, epoch_batches, logged_events, open_session, prompt_metadata

HOLDOUT_PAIRS = 64  # training pairs set aside to choose the best prompt (at most a fifth of them)
ROUND_TRIP_INPUTS = 3  # inputs in whose contexts a prompt must survive decode -> encode
REPAIR_TRIES = 200


def search(config: TrainConfig, stop: threading.Event | None = None, resume: str | Path | None = None) -> Iterator[Event]:
    """Run (or resume) a hard-prompt search, yielding events; every event is also appended to the run
    folder's metrics.jsonl, and errors end the stream with Failed, as in training.train."""
    yield from logged_events(lambda progress: _events(config, stop or threading.Event(), resume, progress))


def start_ids(session: Session, projection: Projection, allowed: torch.Tensor, round_trip: RoundTrip,
              generator: torch.Generator) -> tuple[torch.Tensor, list[int]]:
    """The initial vectors (config.init, as for a soft prompt) and the tokens they project to, with
    positions re-drawn from the allowed tokens until the prompt survives the round trip (a re-drawn
    position's vector becomes its token's row)."""
    config, frozen = session.config, session.frozen
    vectors = SoftPrompt.initial(config.init, config.prompt_len, frozen.embedding.weight, frozen.tokenizer, generator).vectors
    projected = projection.ids(vectors).tolist()
    ids = list(projected)
    pool = allowed.nonzero().flatten()
    for _ in range(REPAIR_TRIES):
        if round_trip([ids])[0]:
            redrawn = torch.tensor([a != b for a, b in zip(ids, projected)], device=vectors.device)
            return torch.where(redrawn[:, None], projection.rows(ids).to(vectors.device), vectors).detach(), ids
        position = int(torch.randint(len(ids), (1,), generator=generator))
        ids[position] = int(pool[torch.randint(len(pool), (1,), generator=generator)])
    raise UserError(f"no prompt of allowed tokens survives decode -> encode in the template {config.template!r} with this "
                    f"tokenizer; try another template, or --readable-only false", "template")


def make_method(config: TrainConfig, frozen: FrozenModel, projection: Projection, allowed: torch.Tensor,
                round_trip: RoundTrip, vectors: torch.Tensor, ids: list[int], generator: torch.Generator):
    """The method object: `.ids` (its current prompt), `.step(batch, lr)` -> that step's loss of a
    real-token prompt on the batch, and `state_dict()`/`load_state_dict()` for checkpoints."""
    if config.method == "pez":
        return PEZ(frozen, projection, vectors, config.lr)
    if config.method == "gcg":
        return GCG(frozen, projection, allowed, round_trip, ids, config.topk, config.candidates, generator, config.rescore)
    return Relaxation(frozen, projection, allowed, ids, config.lr)


def _events(config: TrainConfig, stop: threading.Event, resume: str | Path | None, progress: dict) -> Iterator[Event]:
    if config.mode != "hard":
        raise UserError(f"the hard-prompt search needs mode hard, got {config.mode!r}", "mode")
    run = RunFolder.open(resume) if resume else None
    checkpoint = run.load_checkpoint() if run else None
    if checkpoint and (checkpoint.get("mode") != "hard" or checkpoint.get("method") != config.method):
        held = f"hard {checkpoint['method']}" if checkpoint.get("mode") == "hard" else "soft"
        raise UserError(f"run {run.path} holds a {held} checkpoint; resume it with the mode and method it was started with", "method")
    session = open_session(config)
    if session.processes.active:
        raise UserError("hard mode runs in a single process; start it without accelerate launch / torchrun", "mode")
    frozen, encoder, split = session.frozen, session.encoder, session.split
    if len(split.train) < 2:
        raise UserError(f"hard mode needs at least 2 training pairs (one to search on, one to choose with), got {len(split.train)}", "data")
    n_holdout = max(1, min(HOLDOUT_PAIRS, len(split.train) // 5))
    search_pairs = [encoder.encode(p.x, p.y) for p in split.train[:-n_holdout]]
    holdout = split.train[-n_holdout:]
    eval_pairs = split.test[: config.eval_size] if config.eval_size else split.test
    sample_pairs = split.test[: config.num_predictions]

    table = frozen.embedding.weight
    allowed = allowed_tokens(frozen.tokenizer, table.shape[0], config.readable_only)
    projection = Projection(table, allowed)
    round_trip = RoundTrip(encoder, [p.x for p in split.train[:ROUND_TRIP_INPUTS]])
    generator = torch.Generator().manual_seed(config.seed)
    vectors, ids = start_ids(session, projection, allowed, round_trip, generator)
    method = make_method(config, frozen, projection, allowed, round_trip, vectors, ids, generator)

    batch_config = config.replace(batch_size=config.search_batch_size)
    steps_per_epoch = math.ceil(len(search_pairs) / config.search_batch_size)
    total_steps = math.ceil(config.epochs * steps_per_epoch) if config.epochs else config.steps
    held_out: dict[tuple[int, ...], float] = {}  # held-out loss of every prompt scored, by its ids

    def holdout_loss(prompt_ids: list[int]) -> float:
        key = tuple(prompt_ids)
        if key not in held_out:
            held_out[key] = score_prompt(frozen, encoder, holdout, projection.rows(prompt_ids), session.eval_batch_size).test_loss
        return held_out[key]

    def found(step: int) -> HardPromptFound:
        return HardPromptFound(step, list(best_ids), token_texts(frozen.tokenizer, best_ids), decode(frozen.tokenizer, best_ids), best_loss)

    start_step, best_test = 0, math.inf
    if checkpoint:
        method.load_state_dict(checkpoint["method_state"])
        torch.set_rng_state(checkpoint["rng"])
        start_step, best_test = checkpoint["step"], checkpoint["best_test_loss"]
        best_ids, best_loss = checkpoint["best_ids"], checkpoint["best_train_loss"]
        run.save_config(config)
    else:
        best_ids, best_loss = ids, holdout_loss(ids)
        run = RunFolder.create(config.runs_dir, config.name or datetime.now().strftime("%Y%m%d-%H%M%S"), config)
    progress["run"], progress["step"] = run, start_step
    yield Started(str(run.path), config.model, str(frozen.device), session.precision, len(split.train), len(split.test),
                  total_steps, start_step, steps_per_epoch)

    def evaluate(step: int, label: str, pairs, prompt_ids: list[int]) -> Iterator[Event]:
        nonlocal best_test
        score = score_prompt(frozen, encoder, pairs, projection.rows(prompt_ids), session.eval_batch_size)
        if label == "learned":
            best_test = min(best_test, score.test_loss)
        yield Evaluation(step, label, score.test_loss, score.accuracy, score.n_pairs, best_test if best_test < math.inf else None)

    def readout(step: int) -> Iterator[Event]:
        vectors = projection.rows(best_ids)
        yield Predictions(step, predictions(frozen, encoder, sample_pairs, vectors))
        yield NearestTokens(step, nearest_tokens(vectors, table, frozen.tokenizer, config.nearest_k))

    def save(step: int) -> Iterator[Event]:
        state = {"mode": "hard", "method": config.method, "step": step, "method_state": method.state_dict(),
                 "best_ids": list(best_ids), "best_train_loss": best_loss, "best_test_loss": best_test, "since_best": since_best,
                 "rng": torch.get_rng_state()}
        path = run.save_checkpoint(state)
        metadata = {**prompt_metadata(config, step, session.precision), "mode": "hard", "method": config.method,
                    "hard_prompt_ids": json.dumps(list(best_ids)), "hard_prompt_text": decode(frozen.tokenizer, best_ids)}
        run.save_prompt(projection.rows(best_ids), metadata)
        yield Checkpoint(step, str(path))

    if start_step == 0:
        baseline, baseline_encoder = session.baseline_prompt()
        score = score_prompt(frozen, baseline_encoder, split.test, baseline, session.eval_batch_size)
        yield Evaluation(0, "hand-written", score.test_loss, score.accuracy, score.n_pairs, None)
        yield from evaluate(0, "untrained", split.test, ids)
        yield found(0)
        yield from readout(0)

    started_at, step_seconds, examples_per_s = time.perf_counter(), 0.0, 0.0
    step, batches_epoch = start_step, -1
    since_best = checkpoint.get("since_best", 0) if checkpoint else 0
    while step < total_steps and not stop.is_set():
        t0 = time.perf_counter()
        epoch, k = divmod(step, steps_per_epoch)
        if epoch != batches_epoch:
            batches, batches_epoch = epoch_batches(search_pairs, batch_config, epoch), epoch
        batch = encoder.collate([search_pairs[i] for i in batches[k]]).to(frozen.device)
        lr = learning_rate(step, total_steps, config.lr, config.warmup_steps, config.schedule)
        loss = method.step(batch, lr)
        if not math.isfinite(loss):
            raise FloatingPointError(f"search loss became {loss} at step {step + 1}; lower --lr or use --precision fp32")
        step += 1
        progress["step"] = step
        proposal = method.ids
        improved = False
        if tuple(proposal) not in held_out and round_trip([proposal])[0] and holdout_loss(proposal) < best_loss:
            best_ids, best_loss, improved = proposal, holdout_loss(proposal), True
        since_best = 0 if improved else since_best + 1
        if config.patience and since_best >= config.patience and hasattr(method, "restart"):
            # a search that wandered off for `patience` steps goes on from the best prompt instead
            method.restart(best_ids)
            since_best = 0
        dt = time.perf_counter() - t0
        step_seconds += dt
        rate = len(batch.input_ids) / dt
        examples_per_s = rate if examples_per_s == 0 else 0.9 * examples_per_s + 0.1 * rate
        yield Step(step, step / steps_per_epoch, loss, lr, examples_per_s,
                   time.perf_counter() - started_at, (total_steps - step) * step_seconds / (step - start_step))
        if improved:
            yield found(step)
        if step < total_steps and not stop.is_set():
            if config.eval_every and step % config.eval_every == 0:
                yield from evaluate(step, "learned", eval_pairs, best_ids)
                yield from readout(step)
            if config.checkpoint_every and step % config.checkpoint_every == 0:
                yield from save(step)

    if stop.is_set() and step < total_steps:
        yield from save(step)
        yield Finished(step, True, None, None, str(run.path / "prompt.safetensors"))
        return
    final = score_prompt(frozen, encoder, split.test, projection.rows(best_ids), session.eval_batch_size)
    best_test = min(best_test, final.test_loss)
    yield Evaluation(step, "learned", final.test_loss, final.accuracy, final.n_pairs, best_test)
    yield from readout(step)
    yield from save(step)
    yield Finished(step, False, final.test_loss, final.accuracy, str(run.path / "prompt.safetensors"))
