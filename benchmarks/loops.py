"""The training loops the benchmarks compare, each behind the same small interface.

- `PromptgradLoop`: promptgrad's own step (`promptgrad.train.loop.training_step`): weights held once in the
  compute dtype, fp32 master prompt, rows aligned at their end so only the target columns get logits,
  the template's constant prefix computed once (prefix_cache.py).
- `OriginalLoop`: a faithful re-implementation of the original experiment's loop: fp32 weights, each
  batch right-padded to its longest sequence, the prompt spliced in per example, Hugging Face's
  `labels=` loss (full-vocabulary logits at every position), optionally under `torch.autocast`.
- `PeftLoop`: Hugging Face PEFT's prompt tuning (`PromptTuningConfig`), which can only put the prompt in
  front of the text: "{prompt}Here are two {x} and {y}"; also fp32 weights with optional autocast.

Every loop starts from the same initial prompt and trains it with Adam on the same batches (the
examples of each step are the same for all; PEFT's rows just lack the prompt in the middle);
`vectors()` gives the learned prompt so all are scored by the same fp32 scorer
(`promptgrad.readout.evaluation.score_prompt`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import time
from dataclasses import dataclass, field
from functools import cached_property

import torch

from promptgrad.config import TrainConfig
from promptgrad.learners.learner import training_step
from promptgrad.model.models import FrozenModel, load_model
from promptgrad.model.objective import target_loss
from promptgrad.model.soft_prompt import SoftPrompt
from promptgrad.model.template import PROMPT_PLACEHOLDER, EncodedPair, Template, TemplateEncoder
from promptgrad.problem.pairs import Split, load_pairs, split_pairs
from promptgrad.readout.evaluation import PromptScore, score_prompt
from promptgrad.train.loop import epoch_batches

FRONT = "{prompt}"  # PEFT's only place for the prompt


@dataclass
class Problem:
    """What every variant shares: the fp32 model, the data split, the template, the initial prompt, and
    the batches every loop trains on."""

    fp32: FrozenModel
    split: Split
    template: str
    initial: torch.Tensor  # [P, hidden] fp32
    batch_size: int
    seed: int
    _epoch: dict[int, list[list[int]]] = field(
        default_factory=dict, init=False, repr=False
    )  # the current epoch's batches

    @staticmethod
    def load(
        model: str, data: str, template: str, prompt_len: int, batch_size: int, seed: int, device: torch.device
    ) -> Problem:
        """The model in fp32 (`shape:NAME`: random weights of that shape, shapes.py), the seeded split
        promptgrad makes, and promptgrad's random mean/std init."""
        from shapes import is_shape, shape_model

        fp32 = shape_model(model, device) if is_shape(model) else load_model(model, device, torch.float32)
        split = split_pairs(load_pairs(data), TrainConfig().learning.test_fraction, seed)
        initial = SoftPrompt.initial(
            "random", prompt_len, fp32.embedding.weight, fp32.tokenizer, torch.Generator().manual_seed(seed)
        ).vectors.detach()
        return Problem(fp32, split, template, initial, batch_size, seed)

    def encoder(self, template: str | None = None) -> TemplateEncoder:
        return TemplateEncoder(Template.parse(template or self.template), self.fp32.tokenizer, self.initial.shape[0])

    @cached_property
    def encoded(self) -> list[EncodedPair]:
        """The training pairs under the template."""
        encoder = self.encoder()
        return [encoder.encode(p.x, p.y) for p in self.split.train]

    def batch(self, k: int) -> list[int]:
        """The k-th batch (indices into split.train; epochs wrap) every loop trains on: promptgrad's (a
        seeded shuffle, similar lengths grouped). All variants see the same examples at every step, so
        their test losses differ only by how they compute; the original loop, which shuffled plainly,
        gets promptgrad's lower padding for free."""
        epoch, i = divmod(k, -(-len(self.encoded) // self.batch_size))
        if epoch not in self._epoch:
            self._epoch.clear()
            self._epoch[epoch] = epoch_batches(self.encoded, self.batch_size, self.seed, epoch)
        return self._epoch[epoch][i]

    def hand_written(self, text: str, pairs: list) -> PromptScore:
        """The score of the hand-written prompt `text` in the template, on `pairs`."""
        ids = self.fp32.tokenizer(text, add_special_tokens=False)["input_ids"]
        encoder = TemplateEncoder(Template.parse(self.template), self.fp32.tokenizer, len(ids))
        return score_prompt(self.fp32, encoder, pairs, self.fp32.embedding.weight[ids].detach(), 64)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Loop:
    """`step(k, lr)` trains on the k-th batch (epochs wrap); `vectors()` is the current prompt."""

    name: str
    scoring_template: str

    def step(self, k: int, lr: float) -> float:
        raise NotImplementedError

    def forward_backward(self, k: int) -> None:
        """The step's model work without the update (warm-up and FLOP counting)."""
        raise NotImplementedError

    def vectors(self) -> torch.Tensor:
        raise NotImplementedError

    def batch_examples(self, k: int) -> int:
        raise NotImplementedError


class PromptgradLoop(Loop):
    def __init__(self, problem: Problem, frozen: FrozenModel, name: str = "promptgrad", prefix_cache: bool = True):
        self.name, self.scoring_template = name, problem.template
        self.problem, self.frozen, self.prefix_cache = problem, frozen, prefix_cache
        self.encoder = problem.encoder()
        self.prompt = SoftPrompt(problem.initial.clone()).to(frozen.device)
        self.optimizer = torch.optim.Adam(self.prompt.parameters(), lr=1.0)

    def _batch(self, k: int):
        batch = self.encoder.collate([self.problem.encoded[j] for j in self.problem.batch(k)]).to(self.frozen.device)
        return batch if self.prefix_cache else dataclasses.replace(batch, prefix_len=0)  # an ablation: every column fed

    def batch_examples(self, k: int) -> int:
        return len(self.problem.batch(k))

    def step(self, k: int, lr: float) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return training_step(self.frozen, self._batch(k), self.prompt.vectors, self.optimizer)

    def forward_backward(self, k: int) -> None:
        target_loss(self.frozen, self._batch(k), self.prompt.vectors).backward()
        self.prompt.vectors.grad = None

    def vectors(self) -> torch.Tensor:
        return self.prompt.vectors.detach().float()


class PaddedLoop(Loop):
    """Shared by the original loop and PEFT: right padding, `labels=` loss, optional autocast."""

    def __init__(self, problem: Problem, autocast: torch.dtype | None, template: str):
        self.problem, self.autocast = problem, autocast
        self.frozen = problem.fp32
        self.device = self.frozen.device
        encoder = problem.encoder(template)
        self.pairs = [encoder.encode(p.x, p.y) for p in problem.split.train]
        self.pad_id = encoder.pad_id

    def batch_examples(self, k: int) -> int:
        return len(self.problem.batch(k))

    def _padded(self, k: int, keep_placeholder: bool):
        seqs, labels = [], []
        for j in self.problem.batch(k):
            pair: EncodedPair = self.pairs[j]
            context = pair.context if keep_placeholder else [t for t in pair.context if t != PROMPT_PLACEHOLDER]
            seqs.append(context + pair.target)
            labels.append([-100] * len(context) + pair.target)
        width = max(map(len, seqs))
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        lab = torch.full((len(seqs), width), -100, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, (s, label) in enumerate(zip(seqs, labels)):
            ids[i, : len(s)], lab[i, : len(label)], mask[i, : len(s)] = torch.tensor(s), torch.tensor(label), 1
        return ids.to(self.device), lab.to(self.device), mask.to(self.device)

    def _autocast(self):
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)

    def _loss(self, k: int) -> torch.Tensor:
        raise NotImplementedError

    def step(self, k: int, lr: float) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._loss(k)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def forward_backward(self, k: int) -> None:
        self._loss(k).backward()
        self.optimizer.zero_grad(set_to_none=True)


class OriginalLoop(PaddedLoop):
    def __init__(self, problem: Problem, autocast: torch.dtype | None, name: str):
        super().__init__(problem, autocast, problem.template)
        self.name, self.scoring_template = name, problem.template
        self.prompt = torch.nn.Parameter(problem.initial.clone().to(self.device))
        self.optimizer = torch.optim.Adam([self.prompt], lr=1.0)

    def _loss(self, k: int) -> torch.Tensor:
        ids, labels, mask = self._padded(k, keep_placeholder=True)
        embedding = self.frozen.embedding
        rows = []
        for seq in ids:  # the original built each example's embeddings by concatenation
            at = int((seq == PROMPT_PLACEHOLDER).nonzero()[0])
            P = self.prompt.shape[0]
            rows.append(torch.cat([embedding(seq[:at]), self.prompt, embedding(seq[at + P :])]))
        with self._autocast():
            out = self.frozen.model(
                inputs_embeds=torch.stack(rows), attention_mask=mask, labels=labels, use_cache=False
            )
        return out.loss.float()

    def vectors(self) -> torch.Tensor:
        return self.prompt.detach().float()


class PeftLoop(PaddedLoop):
    def __init__(self, problem: Problem, autocast: torch.dtype | None, name: str):
        from peft import PromptTuningConfig, PromptTuningInit, get_peft_model

        front = FRONT + problem.template.replace("{prompt}", "").replace("  ", " ").strip()
        super().__init__(problem, autocast, front)
        self.name, self.scoring_template = name, front
        # a private copy: PEFT wraps the model it is given
        model = copy.deepcopy(problem.fp32.model)
        config = PromptTuningConfig(
            task_type="CAUSAL_LM",
            num_virtual_tokens=problem.initial.shape[0],
            prompt_tuning_init=PromptTuningInit.RANDOM,
        )
        self.model = get_peft_model(model, config)
        table = self.model.prompt_encoder["default"].embedding.weight
        with torch.no_grad():
            table.copy_(problem.initial.to(table))
        self.optimizer = torch.optim.Adam([p for p in self.model.parameters() if p.requires_grad], lr=1.0)
        self.model.train(False)

    def _loss(self, k: int) -> torch.Tensor:
        ids, labels, mask = self._padded(k, keep_placeholder=False)
        with self._autocast():
            out = self.model(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False)
        return out.loss.float()

    def vectors(self) -> torch.Tensor:
        return self.model.prompt_encoder["default"].embedding.weight.detach().float()


def timed_steps(loop: Loop, steps: int, lr_at, device: torch.device) -> tuple[float, int, list[float]]:
    """Run `steps` steps after one untimed warm-up forward/backward; return seconds, examples, losses."""
    loop.forward_backward(0)
    synchronize(device)
    seconds, examples, losses = 0.0, 0, []
    for k in range(steps):
        t0 = time.perf_counter()
        losses.append(loop.step(k, lr_at(k)))
        synchronize(device)
        seconds += time.perf_counter() - t0
        examples += loop.batch_examples(k)
    return seconds, examples, losses


def counted_flops(loop: Loop, steps: int) -> int:
    """FLOPs the model work of these steps executes (matrix products and attention, as counted by
    torch.utils.flop_counter), padding included. The count does not depend on the dtype."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        for k in range(steps):
            loop.forward_backward(k)
    return counter.get_total_flops()


def matmul_peak(device: torch.device, dtype: torch.dtype, reps: int = 3) -> float:
    """Best measured FLOP/s of a plain matrix product on this device and dtype, over a few shapes: the
    transformer's own (a batch of tokens times a 576 x 1536 MLP weight) and square ones."""
    shapes = [(256, 576, 1536), (512, 576, 1536), (1024, 1024, 1024)]
    if device.type == "cuda":
        shapes += [(4096, 4096, 4096), (8192, 8192, 8192)]
    best = 0.0
    for n, k, m in shapes:
        a = torch.randn(n, k, device=device, dtype=dtype)
        weight = torch.randn(m, k, device=device, dtype=dtype)
        b = weight.T.contiguous()
        # both layouts: a Linear layer multiplies by its [out, in] weight transposed, and on some CPUs
        # only that layout has a fast bf16 kernel
        for product in (lambda: a @ weight.T, lambda: a @ b):
            product()
            synchronize(device)
            t0 = time.perf_counter()
            for _ in range(reps):
                product()
            synchronize(device)
            best = max(best, 2 * n * k * m * reps / (time.perf_counter() - t0))
    return best
