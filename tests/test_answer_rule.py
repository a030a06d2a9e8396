"""The accuracy rule on text (answer_rule.py), and the scorer that applies it: every pair's `right` is the
rule applied to the answer real greedy generation writes, however the model split it into tokens.

A tiny GPT-2 (the real GPT-2 tokenizer) is taught answers whose tokens and text disagree, on a capitalize
task (`{prompt} {x} -> {y}`): ` Newsp` + `aper` for ` Newspaper` (GPT-2 has ` Newspaper` as one token),
` Paper` + `-` + `bound`, ` Soft` + `-` then a newline, ` They` + `'re`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import fill_prompt, teach

from promptgrad.model.models import load_model
from promptgrad.model.template import Template, TemplateEncoder
from promptgrad.problem.pairs import Pair
from promptgrad.readout.answer_rule import AnswerRule, answer_is_right
from promptgrad.readout.evaluation import decoded, first_pass, greedy_answers, predictions, score_prompt, wrote_target

TEMPLATE = "{prompt} {x} -> {y}"
DATA = Path(__file__).resolve().parent.parent / "data" / "tasks"
NEWSP, APER, NEWSPAPER, NEWLINE = 36765, 2136, 49598, 198  # GPT-2's ids of " Newsp", "aper", " Newspaper", "\n"
TAUGHT = {  # x -> the tokens the model is taught to write (then a newline), as text
    "newspaper": " Newsp|aper",  # the target " Newspaper" is one token: the old token rule marked this wrong
    "paper": " Paper|-|bound",  # a compound: another word than "Paper"
    "soft": " Soft|-",  # a hyphen and then the end of the line: the word ends
    "they": " They|'re",  # a contraction: another word than "They"
    "guitar": " Guitar|.",  # a full stop ends the word
    "house": " Houses",  # a longer word
}
RIGHT = {"newspaper": True, "paper": False, "soft": True, "they": False, "guitar": True, "house": False}


@pytest.fixture(scope="module")
def tokenizer(tiny_gpt2):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_gpt2)


# ---- the rule on text -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, target, right",
    [
        (" Newspaper", " Newspaper", True),
        (" Newspaper.", " Newspaper", True),
        (" Newspaper, and", " Newspaper", True),
        (" Newspaper!", " Newspaper", True),
        (" Newspaper (daily)", " Newspaper", True),
        (" Newspaper\nNewspapers", " Newspaper", True),  # the first line only
        (" Newspapers", " Newspaper", False),
        (" Newspaper2", " Newspaper", False),
        (" Newsp", " Newspaper", False),
        (" Paper-bound", " Paper", False),
        (" They're", " They", False),
        (" Paper's", " Paper", False),  # joined: another word
        (" Paper’s", " Paper", False),
        (" Paper-", " Paper", True),
        (" Paper - bound", " Paper", True),
        (" Paper-.", " Paper", True),  # a joiner alone ends it
        (" Paper'", " Paper", True),
        (" Paper' is", " Paper", True),  # a closing quote
        (" pre-war", " pre-", False),
        (" pre- and post-war", " pre-", True),  # a target ending in a joiner
        (" Afghani (AFN)", " Afghani", True),
        (" New Delhi", " New", True),
        (" Delhi", " New Delhi", False),
        (" dépendant", " dépendant", True),
        (" dépendante", " dépendant", False),
        (" de\u0301pendant", " de", False),  # an accent
        ("Newspaper", " Newspaper", False),
        (" newspaper", " Newspaper", False),  # exact text: the space, the case
        ("", " Newspaper", False),
    ],
)
def test_the_rule_on_text(answer, target, right):
    assert answer_is_right(answer, target) is right


@pytest.mark.parametrize(
    "rule, answer, target, right",
    [
        (AnswerRule(ignore_case=True), " newspaper", " Newspaper", True),
        (AnswerRule(ignore_case=True), " NEWSPAPERS", " Newspaper", False),
        (AnswerRule(strip_whitespace=True), "Newspaper", " Newspaper", True),
        (AnswerRule(strip_whitespace=True), "\t Newspaper", " Newspaper", True),
        (AnswerRule(ignore_punctuation=True), " U.S.", " US", True),
        (AnswerRule(ignore_punctuation=True), " US", " U.S.", True),
        (AnswerRule(ignore_punctuation=True), " Paper-bound", " Paper", False),  # "Paperbound": still another word
        (AnswerRule(ignore_punctuation=True), " Newspaper.com", " Newspaper", False),  # ... "Newspapercom"
        (AnswerRule(ignore_regex=r"\b(the|a) "), " the Newspaper", " Newspaper", True),
        (AnswerRule(ignore_regex=r"\b(the|a) "), " then Newspaper", " Newspaper", False),
        (AnswerRule(ignore_punctuation=True), " ...", " ...", True),  # a target of punctuation alone: its exact text
        (AnswerRule(), " newspaper", " Newspaper", False),
    ],
)
def test_normalisations(rule, answer, target, right):
    assert rule.is_right(answer, target) is right


def test_a_rule_describes_itself():
    assert AnswerRule().describe() == "exact text" and AnswerRule().exact
    assert AnswerRule(ignore_case=True, ignore_punctuation=True).describe() == "ignoring case, punctuation"


@pytest.mark.parametrize(
    "beginning, verdict",
    [
        (" Old", False),
        (" Newsp", None),
        (" Newspaper", None),
        (" Newspaper-", None),
        (" Newspaper'", None),
        (" Newspaper ", True),
        (" Newspaper.", True),
        (" Newspapers", False),
        (" Newspaper-b", False),
        (" Newspaper- ", True),
        (" Newspaper\ufffd", None),
        (" Newsp\ufffd", None),  # a character cut in its bytes: wait for the rest
    ],
)
def test_a_beginning_is_judged_only_when_nothing_after_it_can_change_the_verdict(beginning, verdict):
    assert AnswerRule().verdict(beginning, " Newspaper", complete=False) is verdict
    assert AnswerRule(ignore_regex="x").verdict(beginning, " Newspaper", complete=False) is None  # a regex sees it all


# ---- tokens and text, with the real GPT-2 tokenizer ----------------------------------------------------


def test_the_one_pass_leaves_a_split_answer_to_generation_and_judges_the_rest(tokenizer):
    rule, target = AnswerRule(), [NEWSPAPER]
    ids = tokenizer(" Newspaper.")["input_ids"]
    assert first_pass(tokenizer, target, [NEWSPAPER, ids[1]], " Newspaper", rule).right is True
    assert first_pass(tokenizer, target, [NEWSPAPER, NEWLINE], " Newspaper", rule).right is True
    assert first_pass(tokenizer, target, [NEWSPAPER, tokenizer.eos_token_id], " Newspaper", rule).right is True
    assert first_pass(tokenizer, target, [NEWSP, APER], " Newspaper", rule).right is None  # the split: generate
    assert first_pass(tokenizer, target, [NEWSPAPER, tokenizer("-")["input_ids"][0]], " Newspaper", rule).right is None
    assert (
        first_pass(tokenizer, target, [NEWSPAPER, tokenizer("'re")["input_ids"][0]], " Newspaper", rule).right is False
    )
    wrong = first_pass(tokenizer, target, [tokenizer(" Old")["input_ids"][0], NEWLINE], " Newspaper", rule)
    assert wrong.right is False and wrong.text == " Old"


def test_generated_tokens_are_judged_on_their_text(tokenizer):
    target = [NEWSPAPER]
    assert wrote_target(tokenizer, [NEWSP, APER, NEWLINE], target)  # the old token rule said no
    assert wrote_target(tokenizer, tokenizer(" Newspaper-\n")["input_ids"], target)
    assert not wrote_target(tokenizer, tokenizer(" Newspaper-bound\n")["input_ids"], target)
    assert not wrote_target(tokenizer, [NEWSP, NEWLINE, APER], target)  # the line ended inside the word
    assert wrote_target(tokenizer, [NEWSPAPER, tokenizer.eos_token_id, APER], target)  # nothing after the end is read


# ---- the scorer against real generation ------------------------------------------------------------------


def capitalize_pairs(n: int) -> list[Pair]:
    """Lowercase single words of the bundled tasks' files, each to itself capitalized."""
    words = []
    for path in sorted(DATA.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            x = json.loads(line)["x"]
            if x.isalpha() and x.islower() and x not in words and x not in TAUGHT:
                words.append(x)
    step = max(1, len(words) // n)
    return [Pair(w, w.capitalize()) for w in words[::step][:n]]


@pytest.fixture(scope="module")
def taught(tiny_gpt2, tmp_path_factory):
    """The tiny GPT-2, trained (all its weights) until it writes each TAUGHT answer, token for token as
    given, then a newline, after the template filled with the hand-written prompt " capitalize"."""
    folder = tmp_path_factory.mktemp("taught-capitalize")
    shutil.copytree(tiny_gpt2, folder, dirs_exist_ok=True)
    frozen = load_model(str(folder), torch.device("cpu"), torch.float32)
    tokenizer = frozen.tokenizer
    prompt_ids = tokenizer(" capitalize")["input_ids"]
    encoder = TemplateEncoder(Template.parse(TEMPLATE), tokenizer, prompt_len=len(prompt_ids))
    sequences = []
    for x, pieces in TAUGHT.items():
        context = fill_prompt(encoder.encode(x, "_").context, prompt_ids)
        answer = [tokenizer(piece, add_special_tokens=False)["input_ids"][0] for piece in pieces.split("|")]
        sequences.append(torch.tensor(context + answer + [NEWLINE]))
    teach(folder, sequences, passes=150)
    frozen = load_model(str(folder), torch.device("cpu"), torch.float32)
    return frozen, encoder, frozen.embedding.weight[prompt_ids].detach()


def test_the_taught_model_writes_the_taught_tokens(taught):
    frozen, encoder, vectors = taught
    answers = greedy_answers(frozen, encoder, list(TAUGHT), vectors, 8)
    assert [decoded(frozen.tokenizer, a.line_ids) for a in answers] == [
        p.replace("|", "") + "\n" for p in TAUGHT.values()
    ]
    expected = [
        [frozen.tokenizer(p, add_special_tokens=False)["input_ids"][0] for p in pieces.split("|")] + [NEWLINE]
        for pieces in TAUGHT.values()
    ]
    assert [a.line_ids for a in answers] == expected  # the tokens themselves, " Newsp" + "aper" among them


def test_scoring_marks_each_pair_by_the_rule_applied_to_real_generation(taught):
    """The done-when of issue 26: on a capitalize task of bundled words, accuracy is the text rule applied
    to the generated answers, pair for pair (tokenization splits, `-` and `'` among them)."""
    frozen, encoder, vectors = taught
    pairs = [Pair(x, x.capitalize()) for x in TAUGHT] + capitalize_pairs(30)
    score = score_prompt(frozen, encoder, pairs, vectors, batch_size=7)
    generated = greedy_answers(frozen, encoder, [p.x for p in pairs], vectors, 8, min_tokens=4)
    by_rule = [answer_is_right(a.written, " " + p.y) for p, a in zip(pairs, generated)]
    assert [s.right for s in score.pairs] == by_rule
    assert [s.x for s in score.pairs] == [p.x for p in pairs] and [s.y for s in score.pairs] == [p.y for p in pairs]
    assert {x: s.right for x, s in zip(TAUGHT, score.pairs)} == RIGHT
    assert score.accuracy == sum(by_rule) / len(pairs)
    assert 3 <= score.generated < len(pairs)  # " Newsp", " Paper-", " Soft-" fell back; most were judged in one pass
    for s, a in zip(score.pairs, generated):  # each answer is the beginning of what generation wrote
        assert a.written.startswith(s.answer) and s.answer
    newspaper = score.pairs[0]
    assert newspaper.answer == " Newspaper" and newspaper.tokens == 1 and newspaper.loss > 0


def test_predictions_and_scoring_agree(taught):
    frozen, encoder, vectors = taught
    pairs = [Pair(x, x.capitalize()) for x in TAUGHT]
    rows = predictions(frozen, encoder, pairs, vectors)
    assert [r.correct for r in rows] == [RIGHT[x] for x in TAUGHT]
    assert rows[0].predicted == "Newspaper" and rows[1].predicted == "Paper-bound"


def test_normalisation_reaches_the_scorer(taught):
    """Lowercase targets: wrong as exact text, right ignoring case (the split " Newsp" + "aper" too)."""
    frozen, encoder, vectors = taught
    pairs = [Pair("newspaper", "newspaper"), Pair("guitar", "guitar"), Pair("paper", "paper")]
    assert score_prompt(frozen, encoder, pairs, vectors, 8).accuracy == 0
    score = score_prompt(frozen, encoder, pairs, vectors, 8, rule=AnswerRule(ignore_case=True))
    assert [s.right for s in score.pairs] == [True, True, False]


def test_the_loss_alone_reads_no_answers_and_is_the_same_loss(taught):
    frozen, encoder, vectors = taught
    pairs = [Pair(x, x.capitalize()) for x in TAUGHT]
    judged, alone = (score_prompt(frozen, encoder, pairs, vectors, 4, judge=judge) for judge in (True, False))
    assert alone.test_loss == judged.test_loss and alone.loss_interval == judged.loss_interval
    assert alone.pairs == () and alone.accuracy != alone.accuracy  # NaN: not measured


def test_a_bad_regex_is_one_line_and_exit_2(capsys):
    from promptgrad.cli.main import main

    assert main(["train", "--ignore-regex", "(unclosed", "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ignore_regex" in err[0] and "not a regular expression" in err[0]
