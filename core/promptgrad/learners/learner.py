"""What the training loop drives: a learner, which owns the prompt and knows how to improve it by one step.

The loop (training.py) is written once, for every way of learning a prompt; each way is a small object
with the same few methods:

    SoftLearner               Adam on free vectors (this file)
    HardLearner(PEZ|GCG|relax) a search over real tokens, keeping the best on held-out pairs (search/hard_learner.py)

The loop asks a learner for a step on a batch, for the prompt to evaluate and save, and for its state
to checkpoint; everything else (data, schedule, evaluation, readouts, checkpoints, signals, the run
folder) is the loop's, and so is written once.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Protocol

import torch

from promptgrad.errors import UserError
from promptgrad.events import Event
from promptgrad.model.distributed import Processes
from promptgrad.model.models import FrozenModel
from promptgrad.model.objective import target_loss_sum
from promptgrad.model.soft_prompt import SoftPrompt
from promptgrad.model.template import Batch, EncodedPair


class NonFinite(Exception):
    """The loss or the prompt stopped being a finite number; the run ends without saving that prompt."""


class Learner(Protocol):
    mode: ClassVar[str]
    pairs: list[EncodedPair]  # the training pairs its batches are drawn from
    batch_size: int

    def step(self, batch: Batch, lr: float, step: int) -> tuple[float, list[Event]]:
        """One update on `batch`; the batch's loss, and any events the update produced (`step` is the
        1-based number of the step being taken). Raises NonFinite."""

    def prompt(self) -> torch.Tensor:
        """The result so far, [prompt_len, hidden] fp32: what is evaluated, shown and saved."""

    def initial_prompt(self) -> torch.Tensor:
        """The prompt before any step: the untrained baseline."""

    def metadata(self) -> dict[str, str]:
        """What prompt.safetensors carries beyond the run's settings."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def training_step(
    frozen: FrozenModel,
    batch: Batch,
    vectors: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    group: Processes = Processes(),
    report: bool = True,
) -> float | torch.Tensor:
    """One Adam step on the prompt for one (per-process share of a) batch; returns the batch's mean loss,
    which is NaN if the loss *or the updated prompt* is not finite. One host-device sync, the returned
    number; with `report=False` none: the loss stays a tensor on the device (tests/test_gpu_check.py counts
    them). The benchmarks time exactly this function."""
    if batch.input_ids.shape[0]:
        loss_sum, n_tokens = target_loss_sum(frozen, batch, vectors)
    else:  # a short last batch left this process no rows: it adds nothing but joins the collectives
        loss_sum, n_tokens = vectors.sum() * 0.0, torch.zeros((), device=vectors.device)
    # divide by the tokens of the whole global batch, so that summing the processes' gradients
    # gives exactly the gradient of the mean loss a single process would compute
    global_tokens = n_tokens.to(loss_sum.device, torch.float32)
    group.sum_(global_tokens)
    optimizer.zero_grad(set_to_none=True)
    loss = loss_sum / global_tokens
    loss.backward()
    group.sum_(vectors.grad)
    optimizer.step()
    reported = loss.detach().to(vectors.device)
    group.sum_(reported)
    # inf * 0 and nan * 0 are nan: a prompt that went non-finite poisons the reported loss, at no extra sync
    loss_and_prompt = reported + vectors.detach().sum() * 0.0
    return loss_and_prompt.item() if report else loss_and_prompt


class SoftLearner:
    """Adam on `prompt_len` free vectors, the fp32 master copy of the soft prompt."""

    mode: ClassVar[str] = "soft"

    def __init__(
        self,
        frozen: FrozenModel,
        initial: SoftPrompt,
        pairs: list[EncodedPair],
        batch_size: int,
        lr: float,
        group: Processes = Processes(),
    ):
        self.frozen, self.pairs, self.batch_size, self.group = frozen, pairs, batch_size, group
        self.start = initial.vectors.detach().clone().to(frozen.device)
        self.soft = SoftPrompt(self.start).to(frozen.device)
        self.optimizer = torch.optim.Adam(self.soft.parameters(), lr=lr)

    def step(self, batch: Batch, lr: float, step: int) -> tuple[float, list[Event]]:
        for param_group in self.optimizer.param_groups:
            param_group["lr"] = lr
        loss = training_step(self.frozen, batch, self.soft.vectors, self.optimizer, self.group)
        if not math.isfinite(loss):
            raise NonFinite(f"the loss or the prompt became {loss} at step {step}")
        return loss, []

    def prompt(self) -> torch.Tensor:
        return self.soft.vectors

    def initial_prompt(self) -> torch.Tensor:
        return self.start

    def set_prompt(self, vectors: torch.Tensor) -> None:
        """Put `vectors` in the prompt's place: the loop makes the best prompt on a validation split the result."""
        with torch.no_grad():
            self.soft.vectors.copy_(vectors)

    def metadata(self) -> dict[str, str]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"prompt": self.soft.vectors.detach().cpu(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if tuple(state["prompt"].shape) != tuple(self.soft.vectors.shape):
            raise UserError(
                f"the checkpoint's prompt has shape {tuple(state['prompt'].shape)}, not {tuple(self.soft.vectors.shape)}"
            )
        with torch.no_grad():
            self.soft.vectors.copy_(state["prompt"])
        self.optimizer.load_state_dict(state["optimizer"])
