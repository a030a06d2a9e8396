"""The library entry point: learn a prompt for a model and tokenizer already loaded, in a notebook or a
script, without a run folder (nanoGCG's `run(model, tokenizer, ...)` is the model).

    import promptgrad
    result = promptgrad.learn(model, tokenizer, [("hot", "cold"), ("big", "small"), ...], steps=50)
    result.prompt, result.test_loss, result.accuracy

It runs the same loop as `promptgrad train` (training.py), on the model as it is: its device and dtype
are used as they are, and it is frozen (eval mode, no gradients) for good.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from promptgrad.config import TrainConfig
from promptgrad.errors import UserError
from promptgrad.events import Evaluation, Event, Failed, Finished
from promptgrad.integrations.trackers import tracked
from promptgrad.model.models import FrozenModel
from promptgrad.problem.pairs import Pair, split_pairs
from promptgrad.store.run_facts import DataFacts, RunFacts
from promptgrad.train.loop import TrainingRun
from promptgrad.train.session import session_around


@dataclass(frozen=True)
class LearnedPrompt:
    prompt: torch.Tensor  # [prompt_len, hidden] float32, on the CPU: what stands where {prompt} is
    test_loss: float  # on the test pairs (never trained on), per target token
    accuracy: float  # greedy exact match of the whole target on them
    baselines: dict[
        str, float
    ]  # test loss of each hand-written prompt ("hand-written ' antonyms'"), "k-shot", "untrained"
    test: list[Pair]  # the pairs it was tested on
    events: list[Event]  # everything the loop reported, as metrics.jsonl would hold it


def learn(
    model: torch.nn.Module,
    tokenizer,
    pairs: Iterable[tuple[str, str] | Pair],
    config: TrainConfig | None = None,
    on_event: Callable[[Event], None] | None = None,
    stop: threading.Event | None = None,
    **settings,
) -> LearnedPrompt:
    """Learn a prompt for `model` on `pairs` (x, y). `config` and `settings` (any setting by name, e.g.
    steps=50, template="...") as for `promptgrad train`; model, data, device and precision are the
    objects given. `on_event` sees each event as it comes (to show progress); `stop` ends it early."""
    config = (config or TrainConfig()).replace(**settings).resolved()
    pairs = [p if isinstance(p, Pair) else Pair(str(p[0]), str(p[1])) for p in pairs]
    weights = next(model.parameters())
    model.eval()  # no dropout: the loss must be a function of the prompt alone
    model.requires_grad_(False)
    frozen = FrozenModel(
        getattr(model, "name_or_path", type(model).__name__), model, tokenizer, weights.device, weights.dtype
    )
    precision = "bf16" if weights.dtype == torch.bfloat16 else "fp32"
    facts = RunFacts(
        precision, "the model's own dtype", str(weights.device), DataFacts.of("pairs given in memory", pairs)
    )
    learning = config.learning
    split = split_pairs(pairs, learning.test_fraction, learning.seed, learning.train_size, learning.val_fraction)
    run = TrainingRun(config, stop or threading.Event(), None, session=session_around(config, frozen, split, facts))
    events = []
    for event in tracked(run.events(), config, lambda: run.config, False):  # report_to, as train() does
        if event.logged:
            events.append(event)
        if on_event:
            on_event(event)
    last = events[-1]
    if isinstance(last, Failed):
        raise (
            UserError(last.message, last.field or None)
            if last.user_error
            else RuntimeError(last.message + "\n" + last.traceback)
        )
    assert isinstance(last, Finished)
    final = [e for e in events if isinstance(e, Evaluation) and e.n_pairs == len(split.test) and e.prompt != "learned"]
    # the majority answer has no test loss (its accuracy is in `events`)
    baselines = {
        (f"hand-written {e.text!r}" if e.prompt == "hand-written" else e.prompt): e.test_loss
        for e in final
        if e.test_loss is not None
    }
    return LearnedPrompt(
        run.learner.prompt().detach().float().cpu(),
        last.test_loss if last.test_loss is not None else float("nan"),
        last.accuracy if last.accuracy is not None else float("nan"),
        baselines,
        split.test,
        events,
    )
