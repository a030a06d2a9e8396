"""The training loop on the small GPT-2: what changes, what never does, and what lands on disk."""

import json
import threading

import pytest
import torch
from helpers import logged
from safetensors import safe_open

from promptgrad.errors import UserError
from promptgrad.events import Checkpoint, Evaluation, Finished, NearestTokens, Predictions, Started, Step
from promptgrad.model.models import load_model
from promptgrad.model.objective import target_loss
from promptgrad.model.soft_prompt import SoftPrompt
from promptgrad.model.template import Template, TemplateEncoder
from promptgrad.readout.nearest_tokens import nearest_tokens
from promptgrad.store.run_folder import RunFolder
from promptgrad.train.loop import train


def test_only_the_prompt_gets_gradient_and_weights_never_change(tiny_gpt2):
    frozen = load_model(tiny_gpt2, torch.device("cpu"), torch.float32)
    before = {k: v.clone() for k, v in frozen.model.state_dict().items()}
    encoder = TemplateEncoder(Template.parse("Here are two {prompt} {x} and {y}"), frozen.tokenizer, 4)
    prompt = SoftPrompt.initial(
        "random", 4, frozen.embedding.weight, frozen.tokenizer, torch.Generator().manual_seed(0)
    )
    optimizer = torch.optim.Adam(prompt.parameters(), lr=0.1)
    batch = encoder.collate([encoder.encode("hot", "cold"), encoder.encode("big", "small")])
    start = prompt.vectors.detach().clone()
    for _ in range(3):
        optimizer.zero_grad()
        target_loss(frozen, batch, prompt.vectors).backward()
        assert prompt.vectors.grad is not None and prompt.vectors.grad.abs().sum() > 0
        assert all(p.grad is None for p in frozen.model.parameters())
        optimizer.step()
    assert not torch.equal(prompt.vectors, start)
    for k, v in frozen.model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_nearest_token_of_a_token_embedding_is_that_token_with_cosine_one(tiny_gpt2):
    frozen = load_model(tiny_gpt2, torch.device("cpu"), torch.float32)
    ids = frozen.tokenizer(" cold hot", add_special_tokens=False)["input_ids"]
    prompt = frozen.embedding.weight[ids].detach()
    result = nearest_tokens(prompt, frozen.embedding.weight, frozen.tokenizer, k=3)
    for token_id, row in zip(ids, result):
        assert row[0].token_id == token_id
        assert abs(row[0].cosine - 1.0) < 1e-4
        assert row[1].cosine < row[0].cosine


def test_init_from_text_takes_its_tokens_and_says_when_they_do_not_fill_the_prompt(tiny_gpt2):
    frozen = load_model(tiny_gpt2, torch.device("cpu"), torch.float32)
    ids = frozen.tokenizer(" capital city", add_special_tokens=False)["input_ids"]
    prompt = SoftPrompt.initial(
        "text: capital city", len(ids), frozen.embedding.weight, frozen.tokenizer, torch.Generator()
    )
    torch.testing.assert_close(prompt.vectors.detach(), frozen.embedding.weight[ids].detach())
    with pytest.raises(UserError, match=f"is {len(ids)} token\\(s\\), but prompt_len is 4: set prompt_len {len(ids)}"):
        SoftPrompt.initial("text: capital city", 4, frozen.embedding.weight, frozen.tokenizer, torch.Generator())


def test_a_run_yields_every_event_and_writes_its_folder(tiny_config):
    events = logged(train(tiny_config))
    kinds = [type(e) for e in events]
    assert kinds[0] is Started and kinds[-1] is Finished
    assert sum(k is Step for k in kinds) == 6
    for kind in (Evaluation, Predictions, NearestTokens, Checkpoint):
        assert kind in kinds
    labels = {e.prompt for e in events if isinstance(e, Evaluation)}
    assert labels == {"hand-written", "k-shot", "untrained", "learned"}  # TINY_PAIRS: no answer repeats, no majority
    assert len(events[-1 - [type(e) for e in reversed(events)].index(Predictions)].rows) == 3

    run = RunFolder.open(events[0].run_dir)
    assert {p.name for p in run.path.iterdir()} >= {
        "config.toml",
        "facts.json",
        "split.jsonl",
        "metrics.jsonl",
        "checkpoint.pt",
        "prompt.safetensors",
    }
    assert run.config() == tiny_config.resolved()  # the settings as given, what was left empty filled from the task
    lines = (run.path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["event"] for line in lines] == [e.kind for e in events]
    assert run.events() == events
    with safe_open(str(run.path / "prompt.safetensors"), "pt") as f:
        meta = f.metadata()
        tensor = f.get_tensor("prompt")
    assert tensor.dtype == torch.float32 and tuple(tensor.shape) == (4, 64)
    resolved = tiny_config.resolved().problem
    assert meta["model"] == resolved.model and meta["template"] == resolved.template and meta["prompt_len"] == "4"
    assert json.loads(meta["baseline_text"]) == resolved.baseline_text and meta["model_source"] == resolved.model


def test_stop_saves_a_checkpoint_and_resume_continues_to_the_same_prompt(tiny_config, tmp_path):
    straight = logged(train(tiny_config.replace(name="straight", checkpoint_every=0)))
    assert isinstance(straight[-1], Finished) and not straight[-1].stopped

    stop = threading.Event()
    stopped = []
    for event in train(tiny_config.replace(name="interrupted", checkpoint_every=0), stop):
        stopped += logged([event])
        if isinstance(event, Step) and event.step == 2:
            stop.set()
    assert isinstance(stopped[-1], Finished) and stopped[-1].stopped and stopped[-1].step == 2
    assert any(isinstance(e, Checkpoint) and e.step == 2 for e in stopped)

    folder = RunFolder.open(stopped[0].run_dir)
    resumed = logged(train(folder.config(), resume=folder.path))
    assert resumed[0].start_step == 2
    assert [e.step for e in resumed if isinstance(e, Step)] == [3, 4, 5, 6]
    a, _ = RunFolder.open(straight[0].run_dir).load_prompt()
    b, _ = folder.load_prompt()
    torch.testing.assert_close(a, b)
    steps = [e for e in folder.events() if isinstance(e, Step)]
    assert [e.step for e in steps] == [1, 2, 3, 4, 5, 6]


# ---- every phase counted, the ETA whole, a stop heard in any phase (the cockpit's item 3) ------------


def test_the_first_step_comes_before_any_evaluation_or_readout(tiny_config):
    events = [e for e in train(tiny_config) if e.kind != "progress"]
    kinds = [e.kind for e in events]
    assert kinds[0] == "started" and kinds[1] == "step"  # baselines and readouts wait until step 1 is done
    first_eval = kinds.index("evaluation")
    # two hand-written, the k-shot and the untrained prompt (TINY_PAIRS: no answer repeats, so no majority answer)
    assert {e.prompt for e in events[first_eval : first_eval + 4]} == {"hand-written", "k-shot", "untrained"}


def test_readouts_are_counted_and_the_eta_includes_the_evaluations_to_come(tiny_config):
    events = list(train(tiny_config.replace(eval_size=4)))
    readouts = [e for e in events if e.kind == "progress" and e.task.startswith("reading out the prompt")]
    assert readouts and {e.total for e in readouts} == {3} and [e.done for e in readouts[:3]] == [0, 1, 2]
    last_step = [e for e in events if isinstance(e, Step)][-1]
    assert last_step.step == tiny_config.learning.steps and last_step.eta_s > 0  # the whole test set is still to score


@pytest.mark.parametrize("phase", ["reading out the prompt: nearest tokens", "scoring the learned prompt"])
def test_a_stop_in_any_phase_acts_before_another_step(tiny_config, phase):
    stop = threading.Event()
    seen = []
    for event in train(
        tiny_config.replace(steps=20, eval_every=2, eval_size=8, name="stop-" + phase[:7].strip()), stop
    ):
        seen.append(event)
        if event.kind == "progress" and event.task.startswith(phase) and event.step >= 2:
            stop.set()
    at = next(i for i, e in enumerate(seen) if e.kind == "progress" and e.task.startswith(phase) and e.step >= 2)
    after = [e.kind for e in seen[at:]]
    assert "step" not in after and isinstance(seen[-1], Finished) and seen[-1].stopped
    assert seen[-1].step == seen[at].step
