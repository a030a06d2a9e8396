"""PEZ, "Hard Prompts Made Easy" (Wen et al. 2023): gradient descent that only ever reads real tokens.

It keeps a continuous shadow prompt P. Each step projects P onto the nearest vocabulary embeddings P'
(cosine, as the paper does), computes the loss and its gradient *at P'*, and applies that gradient to P.
So the loss is always the loss of a real token sequence, while P accumulates small updates that would
be rounded away if the tokens themselves were the parameters; a token changes once P has drifted
nearer to another row. The projection is written as a straight-through estimator:
P' = P + (rows - P).detach() has the value of the rows and passes the gradient to P unchanged.
"""

from __future__ import annotations

from typing import Any

import torch

from promptgrad.learners.search.projection import Projection
from promptgrad.model.models import FrozenModel
from promptgrad.model.objective import target_loss
from promptgrad.model.soft_prompt import SoftPrompt
from promptgrad.model.template import Batch


class PEZ:
    def __init__(self, frozen: FrozenModel, projection: Projection, start: torch.Tensor, lr: float):
        self.frozen = frozen
        self.projection = projection
        self.shadow = SoftPrompt(start).to(frozen.device)
        self.optimizer = torch.optim.Adam(self.shadow.parameters(), lr=lr)

    @property
    def ids(self) -> list[int]:
        """The tokens the shadow projects to now."""
        return self.projection.ids(self.shadow.vectors).tolist()

    def step(self, batch: Batch, lr: float) -> float:
        """One update; returns the loss of the projected prompt on `batch`, before the update."""
        shadow = self.shadow.vectors
        projected = shadow + (self.projection.rows(self.ids) - shadow).detach()
        loss = target_loss(self.frozen, batch, projected)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def state_dict(self) -> dict[str, Any]:
        return {"shadow": self.shadow.vectors.detach().cpu(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.shadow.vectors.copy_(state["shadow"])
        self.optimizer.load_state_dict(state["optimizer"])
