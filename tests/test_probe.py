"""The probe answers while a run goes on, and the run's results are exactly what they are without it."""

from __future__ import annotations

import threading

import pytest
import torch
from helpers import logged

from promptgrad.errors import UserError
from promptgrad.events import Finished, Step
from promptgrad.store.run_folder import RunFolder
from promptgrad.train.loop import train
from promptgrad.train.probe import Probe


def test_probing_during_a_run_changes_nothing_in_it(tiny_config):
    config = tiny_config.replace(steps=12, eval_every=4, checkpoint_every=0)
    torch.manual_seed(123)
    quiet = logged(train(config.replace(name="quiet")))
    rng_quiet = torch.get_rng_state()
    torch.manual_seed(123)

    probe, answers, done = Probe(), [], threading.Event()

    def ask_all_the_time():
        while not done.is_set():
            if probe.ready:
                answers.append(probe.ask("hot"))

    asker = threading.Thread(target=ask_all_the_time)
    asker.start()
    try:
        probed = []
        for event in train(config.replace(name="probed"), probe=probe):
            probed += logged([event])
            if isinstance(event, Step):
                answers.append(probe.ask("big"))  # also from the consuming thread, between steps
    finally:
        done.set()
        asker.join()
    assert torch.equal(torch.get_rng_state(), rng_quiet)  # the same RNG stream
    assert isinstance(probed[-1], Finished) and probed[-1].test_loss == quiet[-1].test_loss
    a, _ = RunFolder.open(f"{config.machine.runs_dir}/quiet").load_prompt()
    b, _ = RunFolder.open(f"{config.machine.runs_dir}/probed").load_prompt()
    assert torch.equal(a, b)  # the same prompt values, bit for bit
    assert len(answers) >= 12 and {a.x for a in answers} == {"hot", "big"}
    assert len({a.step for a in answers}) > 3  # answers came from prompts of many steps
    assert all(isinstance(a.learned, str) and isinstance(a.hand_written, str) for a in answers)


def test_the_probe_says_when_there_is_nothing_to_try():
    with pytest.raises(UserError, match="no prompt to try yet"):
        Probe().ask("hot")
