"""Early stopping on a validation split: the best prompt so far, and how long it has stayed the best.

The training loop (training.py) scores the learned prompt on the validation pairs (carved from the
training pairs by `val_fraction`, pairs.py) every `eval_every` steps and at the end, and records each
score here. The prompt with the lowest validation loss is kept (a copy of its vectors) and becomes the
run's result; after `stop_patience` scores in a row without a lower one, training ends. The test pairs
never take part, so the test score of the kept prompt is still an honest estimate.

Everything here goes into the checkpoint, so a resumed run chooses exactly as an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class EarlyStopping:
    patience: int  # scores without a lower validation loss before training ends (0: never)
    best_loss: float = math.inf
    best_step: int = 0
    best_prompt: torch.Tensor | None = None  # a CPU copy of the best vectors: training goes on changing the live ones
    without_gain: int = 0  # scores since the best one
    scored_step: int = -1  # the step last scored: a run stopped while scoring owes that score when resumed

    def record(self, step: int, loss: float, prompt: torch.Tensor) -> bool:
        """One validation score of the prompt at `step`; True if it is the best so far (and now kept).
        A NaN loss is never the best."""
        self.scored_step = step
        if loss < self.best_loss:
            self.best_loss, self.best_step, self.without_gain = loss, step, 0
            self.best_prompt = prompt.detach().float().cpu().clone()
            return True
        self.without_gain += 1
        return False

    @property
    def ran_out(self) -> bool:
        """Patience ran out: training should end here."""
        return self.patience > 0 and self.without_gain >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_loss": self.best_loss,
            "best_step": self.best_step,
            "best_prompt": self.best_prompt,
            "without_gain": self.without_gain,
            "scored_step": self.scored_step,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_loss, self.best_step = float(state["best_loss"]), int(state["best_step"])
        self.best_prompt, self.without_gain = state["best_prompt"], int(state["without_gain"])
        self.scored_step = int(state["scored_step"])
