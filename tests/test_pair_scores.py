"""Per-pair results: a run's pair_scores.jsonl at its final scoring, the same format from `eval --pairs`,
kept across a resume; and `predict`'s expected answers and marks."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import pytest
import torch
from helpers import TINY_PAIRS

from promptgrad.cli.main import main
from promptgrad.events import Evaluation, Finished
from promptgrad.store.run_folder import CHECKPOINT, PAIR_SCORES, RunFolder
from promptgrad.train.loop import train

KEYS = ["prompt", "text", "x", "y", "answer", "right", "loss", "tokens"]


REPEATED = [("chilly", "cold"), ("freezing", "cold"), ("icy", "cold"), ("frosty", "cold")]  # a majority answer to find


def make_run(tiny_gpt2: str, folder: Path, steps: int = 3, **settings):
    from promptgrad.config import TrainConfig

    data = folder / "pairs.jsonl"
    data.write_text("".join(json.dumps({"x": x, "y": y}) + "\n" for x, y in TINY_PAIRS + REPEATED))
    config = TrainConfig(
        **{
            "task": "antonyms",
            "model": tiny_gpt2,
            "data": str(data),
            "steps": steps,
            "batch_size": 4,
            "eval_every": 0,
            "eval_size": 3,
            "checkpoint_every": 0,
            "num_predictions": 0,
            "nearest_k": 2,
            "lr": 1e-2,
            "precision": "fp32",
            "device": "cpu",
            "name": "run",
            "runs_dir": str(folder / "runs"),
            **settings,
        }
    )
    events = list(train(config))
    assert isinstance(events[-1], Finished) and not events[-1].stopped, events[-1]
    return folder / "runs" / "run", events


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def finished(tiny_gpt2, tmp_path_factory):
    return make_run(tiny_gpt2, tmp_path_factory.mktemp("pairs"), template="{prompt} {x} -> {y}")


def test_the_final_scoring_writes_each_test_pair_under_every_prompt(finished):
    run, events = finished
    rows = read_rows(run / PAIR_SCORES)
    assert all(list(row) == KEYS for row in rows)
    test = [
        (r["x"], r["y"]) for r in map(json.loads, (run / "split.jsonl").read_text().splitlines()) if r["side"] == "test"
    ]
    by_prompt = defaultdict(list)
    for row in rows:
        by_prompt[(row["prompt"], row["text"])].append(row)
    final = {
        (e.prompt, e.text): e for e in events if isinstance(e, Evaluation) and e.n_pairs == len(test) and e.step == 3
    }
    assert set(by_prompt) == set(final)  # learned, each hand-written, k-shot, untrained, majority: labelled as logged
    assert {p for p, _ in final} == {"learned", "hand-written", "k-shot", "untrained", "majority"}
    for key, group in by_prompt.items():
        assert [(r["x"], r["y"]) for r in group] == test  # every test pair, in the split's order
        event = final[key]
        assert sum(r["right"] for r in group) / len(group) == event.accuracy  # the logged accuracy, pair for pair
        if key[0] == "majority":
            assert all(r["loss"] is None and r["tokens"] == 0 and r["answer"] == event.text for r in group)
        else:
            assert math.isclose(
                sum(r["loss"] for r in group) / sum(r["tokens"] for r in group), event.test_loss, rel_tol=1e-9
            )
            assert all(r["tokens"] >= 1 and r["answer"] for r in group)
    assert events[-1].accuracy_rule == "exact text"


def test_eval_pairs_writes_the_same_format_for_every_row(finished, tmp_path, capsys):
    run, _ = finished
    out = tmp_path / "pairs.jsonl"
    assert main(["eval", str(run), "--pairs", str(out)]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "accuracy on text, exact text" in shown
    rows = read_rows(out)
    assert all(list(row) == KEYS for row in rows)
    assert list(dict.fromkeys(r["prompt"] for r in rows)) == ["learned", "hand-written", "k-shot", "majority"]
    # the learned prompt scored again by eval: the same answers, marks and losses as the run's final scoring
    learned = [r for r in rows if r["prompt"] == "learned"]
    in_run = [r for r in read_rows(run / PAIR_SCORES) if r["prompt"] == "learned"]
    assert [(r["x"], r["answer"], r["right"], r["tokens"]) for r in learned] == [
        (r["x"], r["answer"], r["right"], r["tokens"]) for r in in_run
    ]
    assert all(math.isclose(a["loss"], b["loss"], rel_tol=1e-6) for a, b in zip(learned, in_run))


def test_eval_pairs_into_no_folder_is_one_line(finished, tmp_path, capsys):
    run, _ = finished
    assert main(["eval", str(run), "--pairs", str(tmp_path / "nowhere" / "pairs.jsonl")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--pairs" in err[0]


def test_pair_scores_survive_a_resume_and_an_older_checkpoint(tiny_gpt2, tmp_path):
    """An extended run keeps its baselines' per-pair results in the checkpoint (their aggregates are not
    scored again); a checkpoint from before per-pair results has its baselines scored again, alike."""
    run, _ = make_run(tiny_gpt2, tmp_path, steps=2, eval_size=0)  # eval_size 0: the baselines scored once, at step 1
    first = [r for r in read_rows(run / PAIR_SCORES) if r["prompt"] != "learned"]
    assert {r["prompt"] for r in first} == {"hand-written", "k-shot", "untrained", "majority"}
    checkpoint = torch.load(run / CHECKPOINT, weights_only=True)
    assert set(checkpoint["baseline_pairs"]) == {
        f"{p} {t}" for p, t in {(r["prompt"], r["text"]) for r in first} if p != "majority"
    }
    del checkpoint["baseline_pairs"]  # as written before per-pair results existed
    torch.save(checkpoint, run / CHECKPOINT)
    assert main(["train", "--resume", str(run), "--steps", "3"]) == 0
    again = read_rows(run / PAIR_SCORES)
    assert [r for r in again if r["prompt"] != "learned"] == first
    assert sum(r["prompt"] == "learned" for r in again) == sum(r["prompt"] == "majority" for r in again)
    events = RunFolder.open(run).events()
    assert events[-1].kind == "finished" and events[-1].step == 3


def test_a_rule_with_normalisations_is_recorded_and_shown(tiny_gpt2, tmp_path, capsys):
    run, events = make_run(tiny_gpt2, tmp_path, steps=1, ignore_case=True, ignore_punctuation=True)
    assert "ignore_case = true" in (run / "config.toml").read_text()
    assert events[-1].accuracy_rule == "ignoring case, punctuation"
    from rich.console import Console

    from promptgrad.cli.progress import TrainingReport

    console = Console(record=True, width=300)
    TrainingReport(console).show(events[-1])
    assert "(ignoring case, punctuation)" in console.export_text()


def test_predict_marks_inputs_of_the_runs_data(finished, capsys):
    run, _ = finished
    capsys.readouterr()
    assert main(["predict", str(run), "hot", "zzz"]) == 0
    hot, other = capsys.readouterr().out.splitlines()
    assert hot.startswith(
        "[prompt] hot -> "
    )  # the template up to {y} (tests/test_answers.py: no arrow of the printer's)
    assert "expected 'cold' (" in hot and ("✓" in hot or "✗" in hot)
    assert "expected" not in other and "✓" not in other and "✗" not in other


def test_the_probe_marks_inputs_of_the_runs_data_by_the_same_rule(finished):
    from promptgrad.readout.answer_rule import answer_is_right
    from promptgrad.train.probe import Probe

    run, _ = finished
    probe = Probe.of_run(run)
    hot, other = probe.ask("hot"), probe.ask("zzz")
    assert hot.expected == ("cold",) and hot.learned_right is answer_is_right(" " + hot.learned, " cold")
    assert isinstance(hot.hand_written_right, bool)
    assert other.expected == () and other.learned_right is None and other.hand_written_right is None
