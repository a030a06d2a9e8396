"""The softmax relaxation: the original experiment's attempt at a discrete prompt, kept as the baseline.

Each position holds logits over the vocabulary; the prompt vector is the softmax-weighted mean of the
embedding rows, and the discrete prompt is the argmax. As in the original, the logits start near
one-hot (on the initial tokens). There the softmax is saturated: its gradient is p(1 - p) ~ 0 for the
chosen token and ~p for the others, so the weighted vector barely moves and the argmax (Adam moves each
logit by about lr a step, 20 apart) stays where it started: the discrete prompt does not improve. That
is why PEZ and GCG exist; this shows it on the same data.
"""

from __future__ import annotations

from typing import Any

import torch

from promptgrad.learners.search.projection import Projection
from promptgrad.model.models import FrozenModel
from promptgrad.model.objective import target_loss
from promptgrad.model.template import Batch

INIT_LOGIT = 20.0  # the initial token's logit, all others 0: probability 1 - 1e-4 over a 50k vocabulary


class Relaxation:
    def __init__(self, frozen: FrozenModel, projection: Projection, allowed: torch.Tensor, ids: list[int], lr: float):
        self.frozen = frozen
        self.projection = projection
        self.table = projection.table.float()
        logits = torch.zeros(len(ids), len(allowed), device=self.table.device)
        logits[torch.arange(len(ids)), torch.tensor(ids)] = INIT_LOGIT
        self.logits = torch.nn.Parameter(logits)
        self.forbidden = ~allowed.to(self.table.device)  # masked out of the softmax, never chosen
        self.optimizer = torch.optim.Adam([self.logits], lr=lr)
        self.relaxed_loss = float("nan")  # the loss of the weighted vectors, the quantity optimised

    def masked_logits(self) -> torch.Tensor:
        return self.logits.masked_fill(self.forbidden, -torch.inf)

    @property
    def ids(self) -> list[int]:
        return self.masked_logits().argmax(-1).tolist()

    def step(self, batch: Batch, lr: float) -> float:
        """One update of the logits; returns the loss of the argmax tokens on `batch`, before the update."""
        with torch.no_grad():
            discrete = target_loss(self.frozen, batch, self.projection.rows(self.ids)).item()
        weights = torch.softmax(self.masked_logits(), dim=-1)
        loss = target_loss(self.frozen, batch, weights @ self.table)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.relaxed_loss = loss.item()
        return discrete

    def state_dict(self) -> dict[str, Any]:
        return {"logits": self.logits.detach().cpu(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.logits.copy_(state["logits"])
        self.optimizer.load_state_dict(state["optimizer"])
