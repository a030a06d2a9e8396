"""GCG, greedy coordinate gradient (Zou et al. 2023; AutoPrompt and ARCA are relatives):
gradients propose, exact losses decide.

One step on a batch of training pairs:
1. the gradient of the batch loss with respect to the one-hot token matrix at the prompt positions
   (the embedding gradient times the embedding table: the same numbers without a [P, vocab] forward);
2. at each position, the top-k allowed tokens by negative gradient (the current token left out);
3. `candidates` prompts that each swap one position for one of those tokens, spread evenly over the
   positions; duplicates and prompts that fail the round trip are dropped;
4. the exact loss of every candidate on the same batch, many candidates to a forward pass, no graph;
   or, with `rescore` R > 0, every candidate on a quarter of the batch (a screen), then only the R best
   on all of it: many candidates explored, the choice still made on the whole batch;
5. the best candidate is kept only if its loss is not above the current prompt's on that batch, so a
   step never makes the batch loss worse.

With a fluency weight lambda > 0 (fluency.py; EPO, FLRT), "loss" above is the task loss plus lambda
times the prompt's own cross-entropy in nats/token, in the proposals' gradient and in the exact scores.
With lambda 0 nothing of that is computed: the search is exactly the plain one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from promptgrad.config import GCGSettings
from promptgrad.learners.search.fluency import nats_per_token
from promptgrad.learners.search.fluency import one_hot_gradient as fluency_gradient
from promptgrad.learners.search.projection import Projection, RoundTrip
from promptgrad.model.models import FrozenModel
from promptgrad.model.objective import target_logits, target_loss
from promptgrad.model.template import Batch

# sequences (candidates x pairs) first tried in one forward pass: a GPU takes many more than a CPU needs
ROWS_PER_FORWARD = {"cpu": 512, "cuda": 8192}


@dataclass(frozen=True)
class GCGStep:
    ids: list[int]  # the prompt kept
    loss: float  # its task loss on the step's batch
    previous_loss: float  # the objective of the prompt the step started from, on the same batch
    n_candidates: int  # candidates scored after filtering


def token_gradient(frozen: FrozenModel, batch: Batch, projection: Projection, ids: list[int]) -> torch.Tensor:
    """d loss / d one-hot [P, vocab] at the prompt `ids`."""
    vectors = projection.rows(ids).requires_grad_(True)
    target_loss(frozen, batch, vectors).backward()
    return vectors.grad @ projection.table.float().T


def top_tokens(gradient: torch.Tensor, ids: list[int], allowed: torch.Tensor, k: int) -> torch.Tensor:
    """[P, k] token ids per position, most promising (most negative gradient) first."""
    scores = (-gradient).masked_fill(~allowed.to(gradient.device), -torch.inf)
    scores[torch.arange(len(ids)), torch.tensor(ids)] = -torch.inf
    k = min(k, int(allowed.sum()) - 1)
    return scores.topk(k, dim=-1).indices


def sample_candidates(ids: list[int], top: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """[<= n, P] distinct single-swap prompts: position i % P for the i-th, token drawn from that position's top-k."""
    top = top.cpu()
    positions = torch.arange(n) % len(ids)
    choices = torch.randint(top.shape[1], (n,), generator=generator)
    candidates = torch.tensor(ids).repeat(n, 1)
    candidates[torch.arange(n), positions] = top[positions, choices]
    return torch.unique(candidates, dim=0)


def candidate_losses(
    frozen: FrozenModel,
    batch: Batch,
    projection: Projection,
    candidates: torch.Tensor,
    rows_per_forward: int | None = None,
) -> torch.Tensor:
    """[C] mean cross-entropy per target token of each candidate prompt [C, P] on the whole batch.
    As many (candidate, pair) rows go into one forward pass as fit: from ROWS_PER_FORWARD for the device,
    halved on running out of GPU memory (nanoGCG does the same with accelerate's find_executable_batch_size,
    which also empties the cache before every call: too costly once a step), and the size that fitted is
    where the next step starts."""
    rows = rows_per_forward or frozen.rows_per_forward or ROWS_PER_FORWARD.get(frozen.device.type, 512)
    while True:
        try:
            losses = _candidate_losses(frozen, batch, projection, candidates, rows)
        except torch.OutOfMemoryError:
            if rows <= batch.input_ids.shape[0]:
                raise
            rows //= 2
            torch.cuda.empty_cache()
            continue
        if rows_per_forward is None:
            frozen.rows_per_forward = rows
        return losses


@torch.inference_mode()
def _candidate_losses(
    frozen: FrozenModel, batch: Batch, projection: Projection, candidates: torch.Tensor, rows_per_forward: int
) -> torch.Tensor:
    B = batch.input_ids.shape[0]
    per_forward = max(1, rows_per_forward // B)
    mask = batch.target_mask.flatten()
    losses = []
    for chunk in candidates.split(per_forward):
        c = len(chunk)
        repeated = batch.map(lambda t: t.repeat(c, 1))  # candidate-major: c blocks of B rows
        prompts = projection.rows(chunk.flatten()).view(c, len(chunk[0]), -1).repeat_interleave(B, dim=0)
        logits = target_logits(frozen, repeated, prompts).float()
        per_token = F.cross_entropy(
            logits.flatten(0, 1), repeated.target_ids.flatten().to(logits.device), reduction="none"
        )
        per_token = per_token.view(c, -1) * mask.to(logits.device)
        losses.append(per_token.sum(-1) / mask.sum())
    return torch.cat(losses).cpu()  # one copy back, after every chunk


class GCG:
    """`settings` are the GCG settings of config.py (topk, candidates, rescore, fluency; patience is the
    learner's); `context` the token ids before the prompt, for the fluency term."""

    def __init__(
        self,
        frozen: FrozenModel,
        projection: Projection,
        allowed: torch.Tensor,
        round_trip: RoundTrip,
        ids: list[int],
        settings: GCGSettings,
        generator: torch.Generator,
        context: list[int] | None = None,
    ):
        self.frozen, self.projection, self.allowed, self.round_trip = frozen, projection, allowed, round_trip
        self.ids = list(ids)
        self.topk, self.candidates, self.generator, self.rescore = (
            settings.topk,
            settings.candidates,
            generator,
            settings.rescore,
        )
        # lambda and the text before the prompt (fluency.py); with lambda 0 nothing of it is computed
        self.fluency, self.context = settings.fluency, context

    def objective(self, batch: Batch, candidates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(task loss, task loss + lambda * nats/token) of each candidate [C, P] on the batch."""
        task = candidate_losses(self.frozen, batch, self.projection, candidates)
        if not self.fluency:
            return task, task
        return task, task + self.fluency * nats_per_token(self.frozen, self.context, candidates)

    def search_step(self, batch: Batch) -> GCGStep:
        gradient = token_gradient(self.frozen, batch, self.projection, self.ids)
        if self.fluency:  # proposals from the gradient of both terms
            gradient = gradient + self.fluency * fluency_gradient(self.frozen, self.context, self.ids)
        top = top_tokens(gradient, self.ids, self.allowed, self.topk)
        candidates = sample_candidates(self.ids, top, self.candidates, self.generator)
        candidates = candidates[self.round_trip(candidates)]
        B = batch.input_ids.shape[0]
        if self.rescore and len(candidates) > self.rescore and B > 1:
            screen = batch.map(lambda t: t[: max(1, B // 4)])
            candidates = candidates[self.objective(screen, candidates)[1].argsort()[: self.rescore]]
        # the current prompt is scored in the same pass, so the comparison is exact on this batch
        task, losses = self.objective(batch, torch.cat([torch.tensor([self.ids]), candidates]))
        current = float(losses[0])
        if len(candidates) and float(losses[1:].min()) <= current:
            best = int(losses[1:].argmin())
            self.ids, kept = candidates[best].tolist(), float(task[1 + best])
        else:
            kept = float(task[0])
        return GCGStep(list(self.ids), kept, current, len(candidates))

    def restart(self, ids: list[int]) -> None:
        """Go on from `ids` (the search loop's best prompt so far, after it stalled)."""
        self.ids = list(ids)

    def step(self, batch: Batch, lr: float) -> float:
        """One search step (GCG has no learning rate); returns the kept prompt's loss on `batch`."""
        return self.search_step(batch).loss

    def state_dict(self) -> dict[str, Any]:
        return {"ids": list(self.ids), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ids = list(state["ids"])
        self.generator.set_state(state["generator"])
