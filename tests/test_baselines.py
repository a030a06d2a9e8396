"""The baselines beside every learned prompt (core/promptgrad/readout/baselines.py): the majority answer and k-shot
demonstrations, scored with bootstrap intervals in a run, in `promptgrad eval` and its --json/--csv."""

from __future__ import annotations

import csv
import json
import threading
from pathlib import Path

import pytest
from helpers import TINY_PAIRS
from transformers import AutoTokenizer

from promptgrad.cli.main import EvalRow, main
from promptgrad.cli.progress import evaluation_line
from promptgrad.events import Evaluation, event_from_json
from promptgrad.model.template import PROMPT_PLACEHOLDER, Template, TemplateEncoder
from promptgrad.problem.pairs import Pair
from promptgrad.readout.baselines import k_shot_template, majority_answer, no_majority_reason, score_majority
from promptgrad.store.run_folder import RunFolder
from promptgrad.train.loop import TrainingRun, train
from promptgrad.train.session import open_session

# ---- the majority answer ------------------------------------------------------------------------------


def test_the_majority_answer_and_its_accuracy_match_a_count_by_hand():
    train = [Pair("a1", "no"), Pair("a2", "yes"), Pair("a3", "maybe"), Pair("a4", "yes"), Pair("a5", "no")]
    # "no" and "yes" twice each: the first in sorted order, "no"
    assert majority_answer(train) == "no"
    # exactly "no" only: not "No", not " no"
    test = [
        Pair("b1", "no"),
        Pair("b2", "yes"),
        Pair("b3", "No"),
        Pair("b4", "no"),
        Pair("b5", " no"),
        Pair("b6", "no"),
        Pair("b7", "maybe"),
        Pair("b8", "never"),
    ]
    score = score_majority(train, test)
    assert (score.answer, score.accuracy, score.n_pairs) == ("no", 3 / 8, 8)
    assert 0 <= score.accuracy_interval.low < 3 / 8 < score.accuracy_interval.high <= 1
    assert majority_answer([Pair("c", "z"), Pair("d", "b"), Pair("e", "z")]) == "z"  # a clear winner beats sorted order


# ---- the k-shot context -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer(tiny_gpt2):
    return AutoTokenizer.from_pretrained(tiny_gpt2)


def decoded(encoder: TemplateEncoder, prompt_ids: list[int], x: str, y: str) -> str:
    """What the model reads for (x, y): the context with the prompt's tokens in its place, then the target."""
    context, target = encoder.encode(x, y).context, encoder.encode(x, y).target
    start = context.index(PROMPT_PLACEHOLDER)
    assert context.count(PROMPT_PLACEHOLDER) == len(prompt_ids)
    return encoder.tokenizer.decode(context[:start] + prompt_ids + context[start + len(prompt_ids) :] + target)


@pytest.mark.parametrize(
    "template, shown, prompt, expected",
    [
        (
            "Here are two {prompt} {x} and {y}",
            [Pair("big", "small"), Pair("up", "down")],
            " antonyms",
            "Here are two antonyms big and small\nHere are two antonyms up and down\nHere are two antonyms hot and cold",
        ),
        ("{x}{prompt} {y}", [Pair("dog", "animal")], " is a kind of", "dog is a kind of animal\nhot is a kind of cold"),
        # braces in a demonstration stay text: it is never parsed as a template
        ("Q: {x}{prompt} A: {y}", [Pair("{y}", "{x} {prompt}")], " ok", "Q: {y} ok A: {x} {prompt}\nQ: hot ok A: cold"),
    ],
)
def test_the_k_shot_context_is_the_demonstrations_then_the_query(tokenizer, template, shown, prompt, expected):
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    encoder = TemplateEncoder(k_shot_template(Template.parse(template), shown, prompt), tokenizer, len(prompt_ids))
    assert decoded(encoder, prompt_ids, "hot", "cold") == expected
    plain = TemplateEncoder(Template.parse(template), tokenizer, len(prompt_ids))
    if not template.startswith("{"):  # the demonstrations join the constant prefix, computed once
        assert encoder.prefix_len > plain.prefix_len


def test_a_runs_k_shot_baseline_shows_k_training_pairs_drawn_with_its_seed(tiny_config):
    session = open_session(tiny_config)
    name, vectors, encoder = session.k_shot_prompt()
    shown = session.k_shot_demonstrations()
    assert name == "3-shot" and len(set(shown)) == 3
    assert all(p in session.split.train and p not in session.split.test for p in shown)
    assert open_session(tiny_config).k_shot_demonstrations() == shown  # the same every time
    hand = session.config.problem.baseline_text[0]
    ids = session.frozen.tokenizer(hand, add_special_tokens=False)["input_ids"]
    assert vectors.shape[0] == len(ids)  # the first hand-written prompt stands in the query too
    x, y = session.split.test[0].x, session.split.test[0].y
    lines = [f"Here are two{hand} {p.x} and {p.y}" for p in shown]
    assert decoded(encoder, ids, x, y) == "\n".join([*lines, f"Here are two{hand} {x} and {y}"])
    assert open_session(tiny_config.replace(k_shot=0)).k_shot_prompt() is None


def test_a_k_shot_context_too_long_for_the_model_is_one_line_that_names_k_shot(tiny_config):
    from promptgrad.errors import UserError

    with pytest.raises(UserError) as refused:
        open_session(tiny_config.replace(k_shot=12))  # the tiny GPT-2 reads 64 positions
    assert refused.value.field == "k_shot" and "lower k_shot" in str(refused.value)


def test_the_eta_counts_the_k_shot_evaluation_still_to_come(tiny_config):
    def seconds_left(k: int) -> float:
        session = open_session(tiny_config.replace(k_shot=k))
        run = TrainingRun(session.config, threading.Event(), None, session=session)
        run.step = run.total = 10
        run.pair_seconds = 1.0  # so the ETA counts pairs still to score
        return run.seconds_to_go(step_seconds=0.0, batch_size=4)

    n_test = len(open_session(tiny_config).split.test)
    # the learned prompt, two hand-written, the untrained one (and the k-shot one): all on the whole test set
    assert seconds_left(0) == 4 * n_test
    assert seconds_left(3) == 5 * n_test


def test_no_majority_row_where_no_answer_repeats_and_one_line_says_why():
    train = [
        Pair("a", "Aardvark"),
        Pair("b", "Badger"),
        Pair("c", "Cat"),
    ]  # every answer once: "Aardvark" would be arbitrary
    test = [Pair("d", "Aardvark"), Pair("e", "Dog")]
    assert score_majority(train, test) is None
    assert no_majority_reason(train) == (
        "no majority baseline: no answer repeats among the 3 training pairs, so none is "
        "the most common (it would be an arbitrary pick)"
    )
    repeated = [*train, Pair("f", "Cat")]
    assert no_majority_reason(repeated) == "" and score_majority(repeated, test).answer == "Cat"
    assert score_majority(repeated, [*test, Pair("g", "Cat")]).right == (False, False, True)


def test_a_run_whose_answers_are_all_unique_has_no_majority_row_and_says_why(tiny_config, tmp_path, capsys):
    events = list(train(tiny_config.replace(steps=2, eval_every=0, checkpoint_every=0, num_predictions=0, nearest_k=0)))
    assert events[-1].kind == "finished", events[-1]
    started = next(e for e in events if e.kind == "started")
    assert started.no_majority.startswith("no majority baseline: no answer repeats among the")  # TINY_PAIRS: all unique
    assert not [e for e in events if isinstance(e, Evaluation) and e.prompt == "majority"]
    capsys.readouterr()
    assert main(["eval", str(Path(tiny_config.get("runs_dir")) / "tiny"), "--json", str(tmp_path / "t.json")]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "no majority baseline: no answer repeats among the" in shown
    assert not [r for r in json.loads((tmp_path / "t.json").read_text())["rows"] if r["prompt"].startswith("majority")]


# ---- in a run, and in eval ----------------------------------------------------------------------------

REPEATED = [("chilly", "cold"), ("freezing", "cold"), ("icy", "cold"), ("frosty", "cold")]  # a majority answer to find


@pytest.fixture(scope="module")
def finished_run(tiny_gpt2, tmp_path_factory) -> Path:
    from promptgrad.config import TrainConfig

    folder = tmp_path_factory.mktemp("baselines")
    data = folder / "pairs.jsonl"
    data.write_text("".join(json.dumps({"x": x, "y": y}) + "\n" for x, y in TINY_PAIRS + REPEATED))
    config = TrainConfig(
        task="antonyms",
        model=tiny_gpt2,
        data=str(data),
        steps=4,
        batch_size=4,
        eval_every=2,
        eval_size=3,
        checkpoint_every=0,
        num_predictions=0,
        nearest_k=2,
        lr=1e-2,
        precision="fp32",
        device="cpu",
        name="run",
        runs_dir=str(folder / "runs"),
    )
    events = list(train(config))
    assert events[-1].kind == "finished" and not events[-1].stopped, events[-1]
    return folder / "runs" / "run"


def test_a_run_logs_majority_and_k_shot_with_intervals_on_the_whole_test_set(finished_run):
    events = RunFolder.open(finished_run).events()
    n_test = events[0].n_test
    final = {e.prompt: e for e in events if isinstance(e, Evaluation) and e.step == 4 and e.n_pairs == n_test}
    assert set(final) == {"learned", "hand-written", "k-shot", "untrained", "majority"}
    for e in final.values():
        assert e.accuracy_low <= e.accuracy <= e.accuracy_high
        if e.prompt == "majority":
            assert e.test_loss is None and e.loss_low is None and e.loss_high is None
        else:
            assert e.loss_low <= e.test_loss <= e.loss_high and e.loss_low < e.loss_high
    assert final["k-shot"].text == "3-shot"
    split = [json.loads(line) for line in (finished_run / "split.jsonl").read_text().splitlines()]
    train_ys = [Pair(s["x"], s["y"]) for s in split if s["side"] == "train"]
    test_ys = [s["y"] for s in split if s["side"] == "test"]
    answer = majority_answer(train_ys)
    assert final["majority"].text == answer and final["majority"].accuracy == test_ys.count(answer) / len(test_ys)
    # and on the evaluation subset at the first look, after step 1
    first = {e.prompt for e in events if isinstance(e, Evaluation) and e.step == 1}
    assert {"k-shot", "majority"} <= first


def test_an_evaluation_record_written_before_intervals_still_loads():
    old = {
        "event": "evaluation",
        "step": 3,
        "prompt": "hand-written",
        "test_loss": 3.7,
        "accuracy": 0.05,
        "n_pairs": 10,
        "best_test_loss": None,
        "text": " antonyms",
    }
    event = event_from_json(old)
    assert (event.test_loss, event.loss_low, event.loss_high, event.accuracy_low, event.accuracy_high) == (
        3.7,
        None,
        None,
        None,
        None,
    )
    assert (
        evaluation_line(event)
        == "step 3: hand-written prompt ' antonyms': test loss 3.7000, accuracy 5.0% on 10 test pairs"
    )
    majority = event_from_json(
        {**old, "prompt": "majority", "test_loss": None, "text": "cold", "accuracy_low": 0.0, "accuracy_high": 0.2}
    )
    assert "majority answer 'cold'" in evaluation_line(majority) and "accuracy 5.0% [0.0, 20.0]" in evaluation_line(
        majority
    )
    with pytest.raises(TypeError):
        event_from_json({**old, "loss_low": "low"})  # the new fields are checked like the old ones


def test_eval_json_and_csv_hold_what_the_terminal_shows(finished_run, tmp_path, capsys):
    out_json, out_csv = tmp_path / "table.json", tmp_path / "table.csv"
    capsys.readouterr()
    assert main(["eval", str(finished_run), "--json", str(out_json), "--csv", str(out_csv)]) == 0
    shown = capsys.readouterr().out
    table = json.loads(out_json.read_text())
    rows = [EvalRow(**r) for r in table["rows"]]
    assert "[95% bootstrap intervals]" in " ".join(shown.split()) and table["title"].endswith(
        "[95% bootstrap intervals]"
    )
    assert [r.prompt.split()[0] for r in rows] == ["soft", "hand-written", "hand-written", "k-shot", "majority"]
    for row in rows:
        line = next(line for line in shown.splitlines() if row.prompt in line)
        cells = [cell.strip() for cell in line.split("│")[2:5]]
        assert cells == list(row.cells()), (line, row)
    assert rows[-1].test_loss is None and "–" in rows[-1].cells()[0] and rows[-1].accuracy_low is not None
    assert all("[" in r.cells()[0] for r in rows[:-1]) and all("[" in r.cells()[1] for r in rows)
    with out_csv.open() as f:
        records = list(csv.DictReader(f))
    assert [r["prompt"] for r in records] == [r.prompt for r in rows]
    for record, row in zip(records, rows):
        for name, value in vars(row).items():
            if name == "prompt":
                continue
            assert record[name] == ("" if value is None else str(value))


def test_eval_to_a_file_in_no_folder_is_one_line_before_any_scoring(finished_run, tmp_path, capsys):
    capsys.readouterr()
    assert main(["eval", str(finished_run), "--json", str(tmp_path / "nowhere" / "table.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--json" in err[0] and "nowhere" in err[0]


def test_the_tui_results_strip_shows_every_baseline_with_intervals_within_80_columns():
    from promptgrad.events import Started
    from promptgrad_tui.widgets.results import ResultsStrip

    strip = ResultsStrip()
    for event in [
        Started("runs/r", "m", "cpu", "fp32", 40, 1292, 12, 0, 10),
        Evaluation(0, "hand-written", 3.68, 0.059, 1292, None, " antonyms", 3.61, 3.75, 0.046, 0.072),
        Evaluation(0, "hand-written", 3.9, 0.04, 1292, None, " words with opposite meanings:", 3.81, 3.99, 0.03, 0.05),
        Evaluation(0, "k-shot", 2.512, 0.201, 1292, None, "3-shot", 2.41, 2.6, 0.18, 0.222),
        Evaluation(0, "untrained", 4.745, 0.035, 1292, None, "", 4.7, 4.79, 0.025, 0.046),
        Evaluation(0, "majority", None, 0.012, 1292, None, "good", None, None, 0.006, 0.019),
        Evaluation(12, "learned", 1.967, 0.374, 1292, 1.967, "", 1.9012, 2.0349, 0.348, 0.401),
    ]:
        strip.apply(event)  # (Finished would draw it, which needs a running app)
    lines = strip.text().plain.splitlines()
    assert max(map(len, lines)) <= 78  # 80 columns, less the strip's padding
    rows = {line.split()[0]: " ".join(line.split()) for line in lines}
    assert rows["learned"] == "learned 1.967 [1.90, 2.03] 37.4% [34.8, 40.1] f4 copies"
    assert rows["3-shot"] == "3-shot demonstrations 2.512 [2.41, 2.60] 20.1% [18.0, 22.2] learned -0.545"
    assert rows["majority"] == "majority 'good' – 1.2% [0.6, 1.9]"
    assert "untrained 4.745 [4.70, 4.79] 3.5% [2.5, 4.6]" in rows.values()


def test_a_checkpoint_from_before_intervals_still_extends(finished_run, tmp_path):
    """Its whole-test-set baselines were cached as [loss, accuracy, pairs]: repeated without intervals."""
    import shutil

    import torch

    run = tmp_path / "old"
    shutil.copytree(finished_run, run)
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    checkpoint["full_baselines"] = {key: values[:3] for key, values in checkpoint["full_baselines"].items()}
    torch.save(checkpoint, run / "checkpoint.pt")
    events = list(train(RunFolder.open(run).config().replace(steps=5), resume=run))
    assert events[-1].kind == "finished" and not events[-1].stopped, events[-1]
    final = {e.prompt: e for e in events if isinstance(e, Evaluation) and e.step == 5}
    assert (
        final["hand-written"].loss_low is None
        and final["k-shot"].test_loss == checkpoint["full_baselines"]["k-shot 3-shot"][0]
    )
    assert final["learned"].loss_low is not None and final["majority"].accuracy_low is not None


def test_eval_data_leaves_out_the_runs_training_pairs_and_says_how_many(finished_run, tmp_path, capsys):
    split = [json.loads(line) for line in (finished_run / "split.jsonl").read_text().splitlines()]
    trained = [s for s in split if s["side"] == "train"][:3]
    held = [s for s in split if s["side"] == "test"][:2]
    data = tmp_path / "mixed.jsonl"
    data.write_text("".join(json.dumps({"x": s["x"], "y": s["y"]}) + "\n" for s in trained + held))
    capsys.readouterr()
    assert main(["eval", str(finished_run), "--data", str(data), "--json", str(tmp_path / "held.json")]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert (
        "3 of the file's 5 pairs are training pairs of the run; they are left out, 2 held-out pairs scored "
        "(--include-training-pairs scores all)"
    ) in shown
    assert {r["n_pairs"] for r in json.loads((tmp_path / "held.json").read_text())["rows"]} == {2}
    assert (
        main(
            [
                "eval",
                str(finished_run),
                "--data",
                str(data),
                "--include-training-pairs",
                "--json",
                str(tmp_path / "all.json"),
            ]
        )
        == 0
    )
    assert "all are scored, as --include-training-pairs asks" in " ".join(capsys.readouterr().out.split())
    assert {r["n_pairs"] for r in json.loads((tmp_path / "all.json").read_text())["rows"]} == {5}
    data.write_text("".join(json.dumps({"x": s["x"], "y": s["y"]}) + "\n" for s in trained))
    assert main(["eval", str(finished_run), "--data", str(data)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing held out to score" in err[0] and "--include-training-pairs" in err[0]


def test_eval_compares_the_learned_prompt_with_each_baseline_pair_by_pair(finished_run, tmp_path, capsys, monkeypatch):
    """The scorer's per-pair results (PromptScore.pairs) are stood in for by scoring each pair on its own with
    the real scorer; eval's paired comparisons must be paired.compare of exactly those, row by row."""
    import dataclasses

    import promptgrad.readout.evaluation as evaluation
    from promptgrad.readout.evaluation import PairScore
    from promptgrad.readout.paired import PairOutcome, compare

    real = evaluation.score_prompt
    scored = []

    def with_pairs(frozen, encoder, pairs, prompt, batch_size, *args, **kwargs):
        score = real(frozen, encoder, pairs, prompt, batch_size, *args, **kwargs)
        each = []
        for p in pairs:
            alone, tokens = real(frozen, encoder, [p], prompt, 1, *args, **kwargs), len(encoder.encode(p.x, p.y).target)
            each.append(PairScore(p.x, p.y, "", alone.accuracy == 1.0, alone.test_loss * tokens, tokens))
        scored.append(tuple(each))
        return dataclasses.replace(score, pairs=tuple(each))

    monkeypatch.setattr(evaluation, "score_prompt", with_pairs)
    capsys.readouterr()
    out_json, out_csv = tmp_path / "table.json", tmp_path / "table.csv"
    assert main(["eval", str(finished_run), "--json", str(out_json), "--csv", str(out_csv)]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    table = json.loads(out_json.read_text())
    names = [r["prompt"] for r in table["rows"]]
    majority = score_majority(
        *(
            lambda s: (
                [Pair(r["x"], r["y"]) for r in s if r["side"] == "train"],
                [Pair(r["x"], r["y"]) for r in s if r["side"] == "test"],
            )
        )([json.loads(line) for line in (finished_run / "split.jsonl").read_text().splitlines()])
    )
    test = [
        Pair(s["x"], s["y"])
        for s in map(json.loads, (finished_run / "split.jsonl").read_text().splitlines())
        if s["side"] == "test"
    ]
    majority_pairs = [
        PairOutcome("majority", majority.answer, p.x, p.y, majority.answer, right, None, 0)
        for p, right in zip(test, majority.right)
    ]
    expected = [compare(scored[0], other, name) for name, other in zip(names[1:], [*scored[1:], majority_pairs])]
    assert len(expected) == 4 and expected[-1].loss_difference is None  # 2 hand-written, k-shot, majority
    assert table["paired"] == [{"learned": names[0], **dataclasses.asdict(c)} for c in expected]
    assert "learned minus each baseline on the same" in shown and "McNemar" in shown
    with out_csv.open() as f:
        records = {r["prompt"]: r for r in csv.DictReader(f)}
    first = expected[0]
    assert float(records[first.baseline]["learned_minus_accuracy"]) == first.accuracy_difference
    assert float(records[first.baseline]["mcnemar_p"]) == first.mcnemar_p and records[names[0]]["mcnemar_p"] == ""


def test_the_start_prompt_is_named_for_what_it_is(finished_run, tiny_config, capsys):
    """With init run:OTHER the row once called "untrained prompt" is the other run's learned prompt: its
    Evaluation keeps prompt="untrained" (old folders, the TUI's chart), and its text says what it is."""
    from promptgrad.model.soft_prompt import start_description

    assert start_description("random") == "untrained (random)"
    assert start_description("text: antonyms") == "start: text ' antonyms'"
    assert start_description("run:runs/first") == "start: run runs/first"
    events = list(
        train(
            tiny_config.replace(
                steps=2, eval_every=0, checkpoint_every=0, num_predictions=0, nearest_k=0, init=f"run:{finished_run}"
            )
        )
    )
    assert events[-1].kind == "finished", events[-1]
    starts = [e for e in events if isinstance(e, Evaluation) and e.prompt == "untrained"]
    assert starts and {e.text for e in starts} == {f"start: run {finished_run}"}
    line = evaluation_line(starts[-1])
    assert line.startswith(f"step 2: start: run {finished_run}: test loss") and "untrained" not in line
    random_start = next(
        e for e in RunFolder.open(finished_run).events() if isinstance(e, Evaluation) and e.prompt == "untrained"
    )
    assert random_start.text == "untrained (random)"
