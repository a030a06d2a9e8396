"""The library entry point: a prompt learned for a model and tokenizer already loaded, without a run folder,
by the same loop as `promptgrad train` (so the same settings give the same prompt)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from helpers import TINY_PAIRS
from transformers import AutoModelForCausalLM, AutoTokenizer

import promptgrad
from promptgrad.errors import UserError
from promptgrad.store.run_folder import RunFolder
from promptgrad.train.loop import train


def test_learn_in_five_lines_gives_the_prompt_train_gives(tiny_gpt2, tiny_config, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # so a stray run folder would show
    model, tokenizer = AutoModelForCausalLM.from_pretrained(tiny_gpt2), AutoTokenizer.from_pretrained(tiny_gpt2)
    result = promptgrad.learn(model, tokenizer, TINY_PAIRS, steps=6, batch_size=4, eval_every=3, eval_size=8, lr=1e-2)
    assert result.prompt.shape == (4, 64) and result.prompt.dtype == torch.float32
    assert set(result.baselines) == {
        "hand-written ' antonyms'",
        "hand-written ' words with opposite meanings:'",
        "k-shot",
        "untrained",
    }  # the majority answer has no loss
    assert len(result.test) == 6
    assert 0 <= result.accuracy <= 1 and result.test_loss < result.baselines["untrained"]
    assert os.listdir(work) == []  # no run folder
    # the same settings through `promptgrad train` learn the same prompt, bit for bit
    events = list(train(tiny_config.replace(steps=6, batch_size=4, eval_every=3, eval_size=8, lr=1e-2, name="same")))
    assert events[-1].kind == "finished"
    saved, _ = RunFolder.open(Path(tiny_config.machine.runs_dir) / "same").load_prompt()
    assert torch.equal(result.prompt, saved)
    assert result.test_loss == events[-1].test_loss


def test_learn_reports_progress_and_bad_settings_in_one_line(tiny_gpt2):
    model, tokenizer = AutoModelForCausalLM.from_pretrained(tiny_gpt2), AutoTokenizer.from_pretrained(tiny_gpt2)
    seen = []
    promptgrad.learn(model, tokenizer, TINY_PAIRS, steps=2, batch_size=4, eval_size=4, on_event=seen.append)
    assert [e.kind for e in seen if e.kind == "step"] == ["step", "step"] and any(e.kind == "progress" for e in seen)
    with pytest.raises(UserError, match="prompt_len must be at least 1"):
        promptgrad.learn(model, tokenizer, TINY_PAIRS, prompt_len=0)
    with pytest.raises(UserError, match="template has no {x}"):
        promptgrad.learn(model, tokenizer, TINY_PAIRS, template="{prompt} {y}")
