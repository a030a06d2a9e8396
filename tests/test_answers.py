"""Whole answers, one rule: the predictions show the whole answer the model writes, case as written, and
mark it by the rule that scores accuracy (evaluation.py). A tiny GPT-2 is taught three answers first, so
that what it writes is known: "New Delhi", "Afghani (AFN)", "dépendant"."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from helpers import TINY_PAIRS, fill_prompt, teach

from promptgrad.cli.main import main
from promptgrad.errors import UserError
from promptgrad.model.models import load_model
from promptgrad.model.template import Template, TemplateEncoder
from promptgrad.problem.pairs import Pair
from promptgrad.readout.evaluation import greedy_answers, predictions, score_prompt

TEMPLATE = "The {prompt} of {x} is {y}"
TAUGHT = {"India": "New Delhi", "Afghanistan": "Afghani (AFN)", "dependent": "dépendant"}


@pytest.fixture(scope="module")
def taught(tiny_gpt2, tmp_path_factory):
    """The tiny GPT-2, trained (all its weights) until it writes each taught answer, then a newline, after
    the template filled with the hand-written prompt " capital"."""
    folder = tmp_path_factory.mktemp("taught-gpt2")
    shutil.copytree(tiny_gpt2, folder, dirs_exist_ok=True)
    frozen = load_model(str(folder), torch.device("cpu"), torch.float32)
    encoder = TemplateEncoder(
        Template.parse(TEMPLATE), frozen.tokenizer, prompt_len=len(frozen.tokenizer(" capital")["input_ids"])
    )
    prompt_ids = frozen.tokenizer(" capital")["input_ids"]
    sequences = []
    for x, y in TAUGHT.items():
        pair = encoder.encode(x, y)
        context = fill_prompt(pair.context, prompt_ids)
        sequences.append(torch.tensor(context + pair.target + frozen.tokenizer("\n")["input_ids"]))
    teach(folder, sequences, passes=300)
    frozen = load_model(str(folder), torch.device("cpu"), torch.float32)
    vectors = frozen.embedding.weight[prompt_ids].detach()
    return frozen, encoder, vectors


def test_the_whole_answer_is_shown_case_and_accents_as_written(taught):
    frozen, encoder, vectors = taught
    answers = greedy_answers(frozen, encoder, list(TAUGHT), vectors, 8)
    assert [a.text for a in answers] == list(TAUGHT.values())


@pytest.mark.parametrize(
    "x, expected, right",
    [
        ("India", "New Delhi", True),
        ("Afghanistan", "Afghani (AFN)", True),
        ("dependent", "dépendant", True),
        ("India", "new delhi", False),  # case as written
        ("India", "Delhi", False),
        ("Afghanistan", "Afghani", True),  # a target that ends where a word ends counts
        ("Afghanistan", "Afgh", False),  # ... one that stops inside a word does not
        ("dependent", "dependant", False),
    ],
)
def test_a_prediction_is_marked_by_the_rule_that_scores_accuracy(taught, x, expected, right):
    frozen, encoder, vectors = taught
    (row,) = predictions(frozen, encoder, [Pair(x, expected)], vectors)
    assert row.predicted == TAUGHT[x] and row.correct is right
    assert score_prompt(frozen, encoder, [Pair(x, expected)], vectors, 8).accuracy == float(right)  # one rule


def test_predict_shows_whole_answers(taught, tmp_path, capsys):
    """`promptgrad predict` on a run of the taught model: the whole answer, not a lowercased first word."""
    from promptgrad.config import TrainConfig
    from promptgrad.train.loop import train

    frozen, _, _ = taught
    data = tmp_path / "pairs.jsonl"
    data.write_text(
        "".join(json.dumps({"x": x, "y": y}, ensure_ascii=False) + "\n" for x, y in [*TAUGHT.items(), *TINY_PAIRS])
    )
    config = TrainConfig(
        model=frozen.model.name_or_path,
        data=str(data),
        template=TEMPLATE,
        init="text: capital",
        prompt_len=len(frozen.tokenizer(" capital")["input_ids"]),
        baseline_text=" capital",
        steps=1,
        lr=1e-9,
        batch_size=4,
        eval_size=4,
        num_predictions=0,
        precision="fp32",
        device="cpu",
        name="taught",
        runs_dir=str(tmp_path / "runs"),
        task="",
    )
    assert list(train(config))[-1].kind == "finished"
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "runs" / "taught"), "India", "Afghanistan", "hot"]) == 0
    out = capsys.readouterr().out.splitlines()
    # the template up to {y}, the answer in its place (no arrow of the printer's), then, for an x of the
    # run's data, the expected answer and its mark by the accuracy rule
    assert out[0].startswith("The [prompt] of India is New Delhi   ✓ expected 'New Delhi' (")
    assert out[1].startswith("The [prompt] of Afghanistan is Afghani (AFN)   ✓ expected 'Afghani (AFN)' (")
    assert out[2].startswith("The [prompt] of hot is ") and "✗ expected 'cold' (" in out[2]


def test_a_pair_longer_than_the_models_context_is_one_line(tiny_config, tmp_path, capsys):
    data = tmp_path / "long.jsonl"
    long_x = " ".join(["word"] * 80)  # the tiny GPT-2 has 64 positions
    data.write_text("".join(json.dumps({"x": x, "y": y}) + "\n" for x, y in [*TINY_PAIRS, (long_x, "short")]))
    assert (
        main(
            [
                "train",
                "--task",
                "antonyms",
                "--model",
                tiny_config.problem.model,
                "--data",
                str(data),
                "--steps",
                "1",
                "--precision",
                "fp32",
                "--runs-dir",
                str(tmp_path / "runs"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "more than the model's context of 64" in err[0] and "word word" in err[0]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_template_may_hold_newlines(tiny_config):
    from promptgrad.train.loop import train

    events = list(train(tiny_config.replace(template="Q: {x}\nA:{prompt}\n{y}", steps=2, name="lines")))
    assert events[-1].kind == "finished", events[-1]
    with pytest.raises(UserError):
        Template.parse("{prompt}\n{y}\n{x}")
