"""The hard-prompt learner: find real tokens for `{prompt}`, one search step at a time.

The training loop (training.py) drives it like the soft learner. Each step, the method
(the `method` setting) proposes a discrete prompt: PEZ (pez.py), GCG (gcg.py) or the softmax relaxation
baseline (relax.py). Every proposal that survives the round trip is scored on a held-out slice of the
*training* pairs; the best one so far is the result, announced by a HardPromptFound event. The test set
only reports, it never chooses.

The run folder is the soft loop's: prompt.safetensors holds the found tokens' embeddings, with
`hard_prompt_ids` (a JSON list) and `hard_prompt_text` in its metadata.
"""

from __future__ import annotations

import json
import math
from typing import Any, ClassVar

import torch

from promptgrad.config import GCGSettings, SearchSettings
from promptgrad.errors import UserError
from promptgrad.events import Event, FrontPoint, HardPromptFound, ParetoFront
from promptgrad.learners.learner import NonFinite
from promptgrad.learners.search.fluency import context_ids, nats_per_token
from promptgrad.learners.search.gcg import GCG
from promptgrad.learners.search.pez import PEZ
from promptgrad.learners.search.projection import Projection, RoundTrip, allowed_tokens, decode, token_texts
from promptgrad.learners.search.relax import Relaxation
from promptgrad.model.models import FrozenModel
from promptgrad.model.soft_prompt import SoftPrompt
from promptgrad.model.template import Batch, TemplateEncoder
from promptgrad.problem.pairs import Pair
from promptgrad.readout.evaluation import score_prompt
from promptgrad.store.run_folder import prompt_vectors

HOLDOUT_PAIRS = 64  # training pairs set aside to choose the best prompt (at most a fifth of them)
ROUND_TRIP_INPUTS = 3  # inputs in whose contexts a prompt must survive decode -> encode
REPAIR_TRIES = 200


def start_ids(
    init: str,
    encoder: TemplateEncoder,
    frozen: FrozenModel,
    projection: Projection,
    allowed: torch.Tensor,
    round_trip: RoundTrip,
    generator: torch.Generator,
) -> tuple[torch.Tensor, list[int]]:
    """The initial vectors (`init`, as for a soft prompt) and the tokens they project to, with
    positions re-drawn from the allowed tokens until the prompt survives the round trip (a re-drawn
    position's vector becomes its token's row)."""
    vectors = SoftPrompt.initial(
        init, encoder.prompt_len, frozen.embedding.weight, frozen.tokenizer, generator, prompt_vectors
    ).vectors
    projected = projection.ids(vectors).tolist()
    ids = list(projected)
    pool = allowed.nonzero().flatten()
    for _ in range(REPAIR_TRIES):
        if round_trip([ids])[0]:
            redrawn = torch.tensor([a != b for a, b in zip(ids, projected)], device=vectors.device)
            return torch.where(redrawn[:, None], projection.rows(ids).to(vectors.device), vectors).detach(), ids
        position = int(torch.randint(len(ids), (1,), generator=generator))
        ids[position] = int(pool[torch.randint(len(pool), (1,), generator=generator)])
    raise UserError(
        f"no prompt of allowed tokens survives decode -> encode in the template {encoder.template.text!r} with this "
        f"tokenizer; try another template, or readable_only false",
        "template",
    )


def make_method(
    method: str,
    gcg: GCGSettings,
    lr: float,
    frozen: FrozenModel,
    projection: Projection,
    allowed: torch.Tensor,
    round_trip: RoundTrip,
    vectors: torch.Tensor,
    ids: list[int],
    generator: torch.Generator,
    context: list[int] | None = None,
):
    """The method object: `.ids` (its current prompt), `.step(batch, lr)` -> that step's loss of a
    real-token prompt on the batch, and `state_dict()`/`load_state_dict()` for checkpoints. PEZ and relax
    have no settings of their own but the learning rate of their continuous shadow."""
    if method == "pez":
        return PEZ(frozen, projection, vectors, lr)
    if method == "gcg":
        return GCG(frozen, projection, allowed, round_trip, ids, gcg, generator, context)
    return Relaxation(frozen, projection, allowed, ids, lr)


def dominates(a: FrontPoint, b: FrontPoint) -> bool:
    return (
        a.train_loss <= b.train_loss
        and a.nats_per_token <= b.nats_per_token
        and (a.train_loss < b.train_loss or a.nats_per_token < b.nats_per_token)
    )


def with_point(front: list[FrontPoint], point: FrontPoint) -> list[FrontPoint] | None:
    """The Pareto front with `point` added, or None if it changes nothing (`point` is dominated or known)."""
    if any(dominates(p, point) or p.ids == point.ids for p in front):
        return None
    return sorted(
        [p for p in front if not dominates(point, p)] + [point], key=lambda p: (p.train_loss, p.nats_per_token)
    )


class HardLearner:
    mode: ClassVar[str] = "hard"

    def __init__(
        self,
        frozen: FrozenModel,
        encoder: TemplateEncoder,
        train: list[Pair],
        eval_batch_size: int,
        generator: torch.Generator,
        *,
        init: str,
        search: SearchSettings,
        gcg: GCGSettings,
        lr: float,
    ):
        if len(train) < 2:
            raise UserError(
                f"hard mode needs at least 2 training pairs (one to search on, one to choose with), got {len(train)}",
                "data",
            )
        self.frozen, self.encoder, self.eval_batch_size = frozen, encoder, eval_batch_size
        self.method_name, self.fluency, self.patience = search.method, gcg.fluency, gcg.patience
        n_holdout = max(1, min(HOLDOUT_PAIRS, len(train) // 5))
        self.pairs = [encoder.encode(p.x, p.y) for p in train[:-n_holdout]]
        self.holdout = train[-n_holdout:]
        self.batch_size = search.search_batch_size
        self.allowed = allowed_tokens(frozen.tokenizer, frozen.embedding.weight.shape[0], search.readable_only)
        self.projection = Projection(frozen.embedding.weight, self.allowed)
        self.round_trip = RoundTrip(encoder, [p.x for p in train[:ROUND_TRIP_INPUTS]])
        self.context = context_ids(encoder)
        vectors, ids = start_ids(init, encoder, frozen, self.projection, self.allowed, self.round_trip, generator)
        self.start_ids = list(ids)
        self.method = make_method(
            search.method,
            gcg,
            lr,
            frozen,
            self.projection,
            self.allowed,
            self.round_trip,
            vectors,
            ids,
            generator,
            self.context,
        )
        # held-out task loss and nats/token of every prompt scored, by its ids
        self.held_out: dict[tuple[int, ...], tuple[float, float]] = {}
        self.best_ids, self.best_loss = list(ids), math.inf
        self.front: list[FrontPoint] = []
        self.since_best = 0

    def scored(self, prompt_ids: list[int]) -> tuple[float, float]:
        """(held-out task loss, nats/token) of a prompt, each computed once."""
        key = tuple(prompt_ids)
        if key not in self.held_out:
            loss = score_prompt(
                self.frozen,
                self.encoder,
                self.holdout,
                self.projection.rows(prompt_ids),
                self.eval_batch_size,
                judge=False,
            ).test_loss  # the loss alone: no answers read
            nats = float(nats_per_token(self.frozen, self.context, torch.tensor([prompt_ids]))[0])
            self.held_out[key] = (loss, nats)
        return self.held_out[key]

    def objective(self, prompt_ids: list[int]) -> float:
        """What the best prompt minimises on the held-out pairs: the task loss, plus lambda times nats/token."""
        loss, nats = self.scored(prompt_ids)
        return loss + self.fluency * nats if self.fluency else loss

    def point(self, prompt_ids: list[int]) -> FrontPoint:
        loss, nats = self.scored(prompt_ids)
        return FrontPoint(list(prompt_ids), decode(self.frozen.tokenizer, prompt_ids), loss, nats)

    def found(self, step: int) -> HardPromptFound:
        tokenizer = self.frozen.tokenizer
        loss, nats = self.scored(self.best_ids)
        return HardPromptFound(
            step,
            list(self.best_ids),
            token_texts(tokenizer, self.best_ids),
            decode(tokenizer, self.best_ids),
            loss,
            nats,
        )

    def consider(self, step: int, prompt_ids: list[int]) -> list[Event]:
        """Score a prompt on the held-out pairs; the events it causes: a better best, a changed front."""
        events: list[Event] = []
        front = with_point(self.front, self.point(prompt_ids))
        if front is not None:
            self.front = front
            events.append(ParetoFront(step, list(front)))
        if self.objective(prompt_ids) < self.best_loss:
            self.best_ids, self.best_loss = list(prompt_ids), self.objective(prompt_ids)
            events.insert(0, self.found(step))
        return events

    def start_events(self) -> list[Event]:
        """Before the first step: the starting prompt is the best so far, and the whole front."""
        self.best_loss = math.inf
        return self.consider(0, self.best_ids)

    def step(self, batch: Batch, lr: float, step: int) -> tuple[float, list[Event]]:
        if self.best_loss == math.inf:  # resumed from a checkpoint taken before the first step
            self.best_loss = self.objective(self.best_ids)
        loss = self.method.step(batch, lr)
        if not math.isfinite(loss):
            raise NonFinite(f"the search loss became {loss} at step {step}")
        proposal = self.method.ids
        events: list[Event] = []
        if tuple(proposal) not in self.held_out and self.round_trip([proposal])[0]:
            events = self.consider(step, proposal)
        improved = any(isinstance(e, HardPromptFound) for e in events)
        self.since_best = 0 if improved else self.since_best + 1
        if self.patience and self.since_best >= self.patience and hasattr(self.method, "restart"):
            # a search that wandered off for `patience` steps goes on from the best prompt instead
            self.method.restart(self.best_ids)
            self.since_best = 0
        return loss, events

    def prompt(self) -> torch.Tensor:
        return self.projection.rows(self.best_ids)

    def initial_prompt(self) -> torch.Tensor:
        return self.projection.rows(self.start_ids)

    def metadata(self) -> dict[str, str]:
        loss, nats = self.scored(self.best_ids)
        front = [
            {"ids": p.ids, "text": p.text, "train_loss": p.train_loss, "nats_per_token": p.nats_per_token}
            for p in self.front
        ]
        return {
            "mode": "hard",
            "method": self.method_name,
            "hard_prompt_ids": json.dumps(list(self.best_ids)),
            "hard_prompt_text": decode(self.frozen.tokenizer, self.best_ids),
            "hard_prompt_nats_per_token": f"{nats:.4f}",
            "fluency": str(self.fluency),
            "pareto_front": json.dumps(front),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "method_state": self.method.state_dict(),
            "best_ids": list(self.best_ids),
            "best_train_loss": self.best_loss,
            "since_best": self.since_best,
            "start_ids": list(self.start_ids),
            "held_out": [[list(k), loss, nats] for k, (loss, nats) in self.held_out.items()],
            "front": [[p.ids, p.text, p.train_loss, p.nats_per_token] for p in self.front],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.method.load_state_dict(state["method_state"])
        self.best_ids, self.best_loss = list(state["best_ids"]), float(state["best_train_loss"])
        self.since_best = int(state["since_best"])
        self.start_ids = list(state["start_ids"])
        self.held_out = {tuple(row[0]): (float(row[1]), float(row[2])) for row in state["held_out"]}
        self.front = [FrontPoint(list(ids), text, float(loss), float(nats)) for ids, text, loss, nats in state["front"]]
