"""The checks that exercise the compute device, as plain functions: the GPU check runs them on CUDA
(where no pytest may be installed), tests/test_gpu_check.py runs them on the CPU. Each returns a dict
of what it measured, with "ok" saying whether it held.

    loss_matches_hf          our target loss (cached prefix, logits at target positions only) against Hugging
                             Face's own masked causal-LM loss, in the device's compute dtype
    prefix_cache_changes_nothing   loss and prompt gradient with and without the cached template prefix
    training_step_trains     steps change the prompt, never a weight, and the loss stays finite
    resume_is_exact          a run stopped and resumed ends with the prompt of a run never stopped
    evaluation_is_stable     scoring the same prompt twice gives the same loss and accuracy
    gcg_scores_exactly       the discrete search's batched candidate scoring against one forward per candidate
    host_syncs_per_step      host-device synchronisations in a training step: at most 1 (the reported loss)
                             and 0 when the step does not report

Tolerances are stated in each result: fp32 to 1e-5 relative, bf16 to 2e-2 (bf16 keeps 8 bits of mantissa;
two orders of summation differ by about that much in a loss of ~10).
"""

from __future__ import annotations

import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from promptgrad.config import TrainConfig
from promptgrad.learners.learner import training_step
from promptgrad.learners.search.gcg import candidate_losses
from promptgrad.learners.search.projection import Projection, allowed_tokens
from promptgrad.model.models import FrozenModel
from promptgrad.model.objective import target_loss
from promptgrad.model.soft_prompt import SoftPrompt
from promptgrad.model.template import Template, TemplateEncoder
from promptgrad.readout.evaluation import score_prompt

TEMPLATE = "Here are two {prompt} {x} and {y}"
PAIRS = [
    ("hot", "cold"),
    ("big", "small"),
    ("up", "down"),
    ("fast", "slow"),
    ("light", "dark"),
    ("old", "new"),
    ("wet", "dry"),
    ("good", "bad"),
    ("high", "low"),
    ("rich", "poor"),
    ("hard", "soft"),
    ("early", "late"),
]


def tolerance(frozen: FrozenModel) -> float:
    return 2e-2 if frozen.dtype == torch.bfloat16 else 1e-5


@dataclass
class Setup:
    frozen: FrozenModel
    encoder: TemplateEncoder
    prompt: torch.Tensor  # [4, hidden] fp32, random init

    def batch(self, pairs=PAIRS, inputs: str = "train"):
        return self.encoder.collate([self.encoder.encode(x, y) for x, y in pairs], inputs=inputs).to(self.frozen.device)


def setup(frozen: FrozenModel) -> Setup:
    encoder = TemplateEncoder(Template.parse(TEMPLATE), frozen.tokenizer, 4)
    prompt = (
        SoftPrompt.initial("random", 4, frozen.embedding.weight, frozen.tokenizer, torch.Generator().manual_seed(0))
        .vectors.detach()
        .to(frozen.device)
    )
    return Setup(frozen, encoder, prompt)


def loss_matches_hf(frozen: FrozenModel) -> dict:
    """Hugging Face's loss: the whole sequence, left-aligned, the prompt's embeddings in place, labels -100
    everywhere but the target; its mean over target tokens is what target_loss computes."""
    s = setup(frozen)
    ours = target_loss(frozen, s.batch(), s.prompt).item()
    total, count = 0.0, 0
    for x, y in PAIRS:
        pair = s.encoder.encode(x, y)
        ids = torch.tensor([pair.context + pair.target], device=frozen.device)
        is_prompt = ids < 0
        embeds = frozen.embedding(ids.clamp(min=0))
        embeds[is_prompt] = s.prompt.to(embeds.dtype)
        labels = torch.full_like(ids, -100)
        labels[0, -len(pair.target) :] = ids[0, -len(pair.target) :]
        with torch.no_grad():
            loss = frozen.model(inputs_embeds=embeds, labels=labels).loss.float().item()
        total, count = total + loss * len(pair.target), count + len(pair.target)
    theirs = total / count
    relative = abs(ours - theirs) / abs(theirs)
    return {
        "ours": ours,
        "hugging_face": theirs,
        "relative_difference": relative,
        "tolerance": tolerance(frozen),
        "ok": relative <= tolerance(frozen),
    }


def prefix_cache_changes_nothing(frozen: FrozenModel) -> dict:
    s = setup(frozen)
    results = {}
    for cached in (True, False):
        batch = s.batch()
        if not cached:
            batch.prefix_len, batch.prefix_ids = 0, ()  # every column fed, no cache
        prompt = s.prompt.clone().requires_grad_(True)
        loss = target_loss(frozen, batch, prompt)
        loss.backward()
        results[cached] = (loss.item(), prompt.grad.clone())
    loss_diff = abs(results[True][0] - results[False][0]) / abs(results[False][0])
    grad_diff = ((results[True][1] - results[False][1]).norm() / results[False][1].norm()).item()
    tol = tolerance(frozen) * 10 if frozen.dtype == torch.bfloat16 else 1e-4
    return {
        "loss_relative_difference": loss_diff,
        "gradient_relative_difference": grad_diff,
        "tolerance": tol,
        "ok": loss_diff <= tolerance(frozen) and grad_diff <= tol,
    }


def training_step_trains(frozen: FrozenModel, steps: int = 5) -> dict:
    s = setup(frozen)
    before = {k: v.clone() for k, v in list(frozen.model.state_dict().items())[:4]}
    prompt = SoftPrompt(s.prompt)
    optimizer = torch.optim.Adam(prompt.parameters(), lr=3e-2)
    batch = s.batch()
    losses = [training_step(frozen, batch, prompt.vectors, optimizer) for _ in range(steps)]
    moved = (prompt.vectors.detach() - s.prompt).abs().max().item()
    unchanged = all(torch.equal(v, frozen.model.state_dict()[k]) for k, v in before.items())
    finite = all(torch.isfinite(torch.tensor(losses)))
    return {
        "losses": losses,
        "prompt_moved_by": moved,
        "weights_unchanged": unchanged,
        "ok": bool(finite and moved > 0 and unchanged and losses[-1] < losses[0]),
    }


def resume_is_exact(frozen: FrozenModel, folder) -> dict:
    """Through the real loop and run folder, on the frozen model's device and dtype."""
    from pathlib import Path

    import promptgrad.train.session as session_module
    from promptgrad.events import Finished, Step
    from promptgrad.store.run_folder import RunFolder
    from promptgrad.train.loop import train

    Path(folder).mkdir(parents=True, exist_ok=True)
    data = Path(folder) / "pairs.jsonl"
    data.write_text("".join(f'{{"x": "{x}", "y": "{y}"}}\n' for x, y in PAIRS * 2))
    precision = "bf16" if frozen.dtype == torch.bfloat16 else "fp32"
    config = TrainConfig(
        task="antonyms",
        model="checked-model",
        data=str(data),
        steps=6,
        batch_size=4,
        eval_every=0,
        eval_size=4,
        checkpoint_every=0,
        num_predictions=1,
        nearest_k=2,
        lr=1e-2,
        precision=precision,
        device=frozen.device.type,
        runs_dir=str(Path(folder) / "runs"),
    )
    real_load = session_module.load_model
    session_module.load_model = lambda *args, **kwargs: frozen  # the model under test, not a download
    real_hidden = session_module.hidden_size
    session_module.hidden_size = lambda name: frozen.hidden_size
    try:
        for _ in train(config.replace(name="straight")):
            pass
        stop = threading.Event()
        for event in train(config.replace(name="stopped"), stop):
            if isinstance(event, Step) and event.step == 3:
                stop.set()
        assert isinstance(event, Finished) and event.stopped
        for event in train(
            RunFolder.open(Path(folder) / "runs" / "stopped").config(), resume=Path(folder) / "runs" / "stopped"
        ):
            pass
        assert isinstance(event, Finished) and not event.stopped, event
    finally:
        session_module.load_model, session_module.hidden_size = real_load, real_hidden
    a, _ = RunFolder.open(Path(folder) / "runs" / "straight").load_prompt()
    b, _ = RunFolder.open(Path(folder) / "runs" / "stopped").load_prompt()
    difference = (a - b).abs().max().item()
    return {
        "max_abs_difference": difference,
        "bit_for_bit": difference == 0.0,
        "ok": difference == 0.0 if frozen.device.type == "cpu" else difference <= 1e-3,
    }


def evaluation_is_stable(frozen: FrozenModel) -> dict:
    s = setup(frozen)
    from promptgrad.problem.pairs import Pair

    pairs = [Pair(x, y) for x, y in PAIRS]
    first = score_prompt(frozen, s.encoder, pairs, s.prompt, 8)
    second = score_prompt(frozen, s.encoder, pairs, s.prompt, 5)  # other batches, same pairs
    difference = abs(first.test_loss - second.test_loss) / first.test_loss
    return {
        "test_loss": first.test_loss,
        "accuracy": first.accuracy,
        "relative_difference_across_batchings": difference,
        "tolerance": tolerance(frozen),
        "ok": difference <= tolerance(frozen) and first.accuracy == second.accuracy,
    }


def gcg_scores_exactly(frozen: FrozenModel, n: int = 16) -> dict:
    s = setup(frozen)
    allowed = allowed_tokens(frozen.tokenizer, frozen.embedding.weight.shape[0], readable_only=True)
    projection = Projection(frozen.embedding.weight, allowed)
    pool = allowed.nonzero().flatten()
    candidates = pool[torch.randint(len(pool), (n, 4), generator=torch.Generator().manual_seed(1))]
    batch = s.batch(PAIRS[:4])
    batched = candidate_losses(frozen, batch, projection, candidates.to(frozen.device), rows_per_forward=12)
    with torch.no_grad():
        single = torch.tensor([target_loss(frozen, batch, projection.rows(c.tolist())).item() for c in candidates])
    difference = ((batched - single).abs() / single.abs()).max().item()
    return {
        "candidates": n,
        "max_relative_difference": difference,
        "tolerance": tolerance(frozen),
        "ok": difference <= tolerance(frozen),
    }


class SyncCounter(TorchDispatchMode):
    """Counts the operations that make the host wait for the device: reading a value back (item(),
    int(), bool(), tolist()) and data-dependent shapes (nonzero, masked_select, unique). On a CPU
    nothing really waits, so this stands in for CUDA's sync debug mode; tensors the GPU run keeps on the
    host anyway (Adam's step counter) are not counted."""

    SYNCING = ("_local_scalar_dense", "nonzero", "masked_select", "unique", "_unique2", "repeat_interleave")

    def __init__(self, host: set[int]):
        super().__init__()
        self.host, self.count = host, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        if name in self.SYNCING and not any(id(a) in self.host for a in args if isinstance(a, torch.Tensor)):
            self.count += 1
        return func(*args, **(kwargs or {}))


@contextmanager
def counting_syncs(device: torch.device, host: set[int]):
    """Yields a list whose first item becomes the number of syncs counted inside."""
    counted = [0]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                yield counted
            finally:
                torch.cuda.set_sync_debug_mode("default")
        counted[0] = sum("synchroniz" in str(w.message) for w in caught)
    else:
        tolist = torch.Tensor.tolist
        with SyncCounter(host) as counter:
            torch.Tensor.tolist = lambda self: (setattr(counter, "count", counter.count + 1), tolist(self))[1]
            try:
                yield counted
            finally:
                torch.Tensor.tolist = tolist
        counted[0] = counter.count


def host_syncs_per_step(frozen: FrozenModel) -> dict:
    s = setup(frozen)
    prompt = SoftPrompt(s.prompt)
    optimizer = torch.optim.Adam(prompt.parameters(), lr=1e-2)
    batch = s.batch()
    training_step(frozen, batch, prompt.vectors, optimizer)  # the first step creates Adam's state
    host = {id(state["step"]) for state in optimizer.state.values() if isinstance(state.get("step"), torch.Tensor)}
    with counting_syncs(frozen.device, host) as reported:
        training_step(frozen, batch, prompt.vectors, optimizer, report=True)
    with counting_syncs(frozen.device, host) as silent:
        training_step(frozen, batch, prompt.vectors, optimizer, report=False)
    how = "torch.cuda.set_sync_debug_mode" if frozen.device.type == "cuda" else "TorchDispatchMode count (CPU stand-in)"
    return {
        "reporting_step": reported[0],
        "silent_step": silent[0],
        "counted_by": how,
        "ok": reported[0] <= 1 and silent[0] == 0,
    }


CHECKS = {
    "loss_matches_hf": loss_matches_hf,
    "prefix_cache_changes_nothing": prefix_cache_changes_nothing,
    "training_step_trains": training_step_trains,
    "evaluation_is_stable": evaluation_is_stable,
    "gcg_scores_exactly": gcg_scores_exactly,
    "host_syncs_per_step": host_syncs_per_step,
}


def run_all(frozen: FrozenModel, folder) -> dict:
    """Every check; one that raises is reported as failed with its error, the others still run."""
    import traceback

    results = {}
    for name, check in {**CHECKS, "resume_is_exact": lambda f: resume_is_exact(f, folder)}.items():
        try:
            results[name] = check(frozen)
        except Exception as e:  # a check that crashes is a result too
            results[name] = {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    return results


if __name__ == "__main__":  # a quick look on this machine: python benchmarks/device_checks.py
    import json
    import sys
    import tempfile
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from shapes import shape_model

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    for dtype in (torch.float32, torch.bfloat16):
        frozen = shape_model("shape:tiny", device, dtype)
        print(dtype, json.dumps({k: v.get("ok") for k, v in run_all(frozen, tempfile.mkdtemp()).items()}))
