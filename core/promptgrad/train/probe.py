"""Try the prompt being learned on any input, while the run goes on, without disturbing it.

    probe = Probe()
    for event in train(config, stop, probe=probe):   # the loop attaches its model and prompt
        ...
    probe.ask("hot")   # from any thread: ProbeAnswer(x="hot", learned="cold", hand_written="hot and cold", step=40)

`ask` decodes greedily (no randomness, so the run's RNG stream is untouched), under inference mode
(no graph), with a copy of the prompt taken under the lock the loop holds while it updates the prompt
(so a copy is never half old, half new, and the run's own prompt is never written). The run's results
are therefore the same with or without probing (tests/test_probe.py checks it bit for bit). After the
run ends, the probe keeps the model and the final prompt, so asking goes on working.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch

from promptgrad.errors import UserError
from promptgrad.model.template import Template, TemplateEncoder
from promptgrad.readout.answer_rule import AnswerRule
from promptgrad.readout.evaluation import greedy_answers, judged_answers
from promptgrad.store.run_folder import RunFolder
from promptgrad.train.session import open_run


@dataclass(frozen=True)
class ProbeAnswer:
    x: str
    learned: str  # the whole answer the model writes with the learned prompt (evaluation.py's Answer.text)
    hand_written: str  # ... and with the hand-written one
    step: int  # the step whose prompt answered
    others: tuple[tuple[str, str], ...] = ()  # (run name, its answer) for other runs' prompts asked alongside
    expected: tuple[str, ...] = ()  # the ys of the run's data pairs with this x (none: the input is no pair's x)
    learned_right: bool | None = (
        None  # by the accuracy rule (answer_rule.py) against any of them; None: nothing expected
    )
    hand_written_right: bool | None = None


class Probe:
    def __init__(self) -> None:
        self.lock = threading.Lock()  # held by the training loop while it changes the prompt
        self._attached: tuple | None = None
        self.others: list = []

    def attach(self, session, prompt: Callable[[], torch.Tensor], step: Callable[[], int]) -> None:
        baseline, baseline_encoder = session.baseline_prompt()
        self._attached = (session, prompt, step, baseline, baseline_encoder)
        self.others: list[tuple[str, torch.Tensor, object]] = []  # (name, prompt, encoder) of other runs

    @staticmethod
    def of_run(path, others: tuple = ()) -> Probe:
        """A probe for a finished run folder (its model loaded now), and for `others`, run folders of the
        same model whose prompts answer alongside (each in its own template); others are left out."""
        from pathlib import Path

        session, prompt = open_run(Path(path))
        probe = Probe()
        step = int(RunFolder.open(path).load_prompt()[1].get("step", 0) or 0)
        probe.attach(session, lambda: prompt, lambda: step)
        for other in others:
            try:
                folder = RunFolder.open(other)
                config, (vectors, _) = folder.config(), folder.load_prompt()
            except UserError:
                continue
            if config.problem.model != session.config.problem.model or vectors.shape[1] != session.frozen.hidden_size:
                continue
            encoder = TemplateEncoder(
                Template.parse(config.problem.template), session.frozen.tokenizer, vectors.shape[0]
            )
            probe.others.append((Path(other).name, vectors.to(session.frozen.device), encoder))
        return probe

    @property
    def ready(self) -> bool:
        return self._attached is not None

    def ask(self, x: str) -> ProbeAnswer:
        if self._attached is None:
            raise UserError("there is no prompt to try yet: start or resume a run first")
        x = x.strip()
        if not x:
            raise UserError("type an input to try, such as hot")
        session, prompt, step, baseline, baseline_encoder = self._attached
        with self.lock:
            vectors, at = prompt().detach().clone(), step()
        frozen = session.frozen
        rule = AnswerRule.of(session.config)  # marked as the run's scoring marks it
        (learned,) = judged_answers(frozen, session.encoder, [x], vectors, 1, session.split, rule)
        (hand,) = judged_answers(frozen, baseline_encoder, [x], baseline, 1, session.split, rule)
        others = tuple(
            (name, greedy_answers(frozen, encoder, [x], other, 1)[0].text) for name, other, encoder in self.others
        )
        return ProbeAnswer(
            x,
            learned.answer.text,
            hand.answer.text,
            at,
            others,
            tuple(dict.fromkeys(y for y, _ in learned.expected)),
            learned.right,
            hand.right,
        )
