"""End to end on the bundled SmolLM2-135M-Instruct (Q4_1): a brief training run beats the hand-written prompt.

Slow by this suite's standards (about two minutes on 2 CPU cores): 20 steps on a 5% test split.
"""

import pytest

from promptgrad.config import TrainConfig
from promptgrad.events import Evaluation, Finished
from promptgrad.train.loop import train


@pytest.mark.slow
def test_learned_prompt_beats_the_hand_written_one_on_unseen_pairs(tmp_path):
    # eval_size 0: the baselines are scored once, on the whole (5%) test split, not again at the end
    config = TrainConfig(
        steps=20,
        batch_size=16,
        test_fraction=0.05,
        eval_every=0,
        eval_size=0,
        checkpoint_every=0,
        num_predictions=4,
        device="cpu",
        name="e2e",
        runs_dir=str(tmp_path),
    )
    events = list(train(config))
    finished = events[-1]
    assert isinstance(finished, Finished), finished
    hand_written = [e for e in events if isinstance(e, Evaluation) and e.prompt == "hand-written"][-1]
    assert hand_written.n_pairs > 300  # the same whole test split the final evaluation uses
    assert finished.test_loss < hand_written.test_loss, (finished.test_loss, hand_written.test_loss)
