"""A learned prompt used without promptgrad: as a PEFT adapter, and by the plain-transformers code of docs/outside.md."""

import contextlib
import io
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from helpers import TINY_PAIRS

from promptgrad import __version__
from promptgrad.cli.main import main, open_run
from promptgrad.config import BUNDLED_MODEL, OLD_BUNDLED_MODEL_NAMES
from promptgrad.errors import UserError
from promptgrad.events import Evaluation
from promptgrad.integrations.export import export_peft
from promptgrad.integrations.model_card import CODE_START, CardFacts, model_card
from promptgrad.model.models import BUNDLED_HUB_ID, load_model, public_name
from promptgrad.model.objective import target_logits
from promptgrad.model.template import PROMPT_PLACEHOLDER, Template, TemplateEncoder
from promptgrad.readout.evaluation import greedy_answers
from promptgrad.store.run_folder import RunFolder
from promptgrad.train.loop import train

ROOT = Path(__file__).resolve().parent.parent
START = "<!-- outside promptgrad: the code below is run by tests/test_export.py -->"
END = "<!-- end of outside promptgrad -->"


@pytest.fixture()
def bos_gpt2(tiny_gpt2, tmp_path) -> str:
    """The tiny model with a tokenizer that starts every text with a BOS token, as Llama-style ones do."""
    from transformers import AutoTokenizer

    folder = tmp_path / "tiny-gpt2-bos"
    shutil.copytree(tiny_gpt2, folder)
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt2, add_bos_token=True)
    tokenizer.save_pretrained(folder)
    assert AutoTokenizer.from_pretrained(folder)("a")["input_ids"][0] == tokenizer.bos_token_id
    return str(folder)


def trained(config, template: str, name: str, model: str | None = None) -> Path:
    # a few steps, with no sample predictions or readings along the way: only the saved prompt matters here
    config = config.replace(
        template=template,
        steps=3,
        name=name,
        eval_every=0,
        num_predictions=0,
        nearest_k=0,
        **({"model": model} if model else {}),
    )
    list(train(config))
    return Path(config.machine.runs_dir) / name


def test_peft_adapter_gives_promptgrads_logits(tiny_config, tiny_gpt2, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    template = "{prompt} {x} and {y}"
    run = trained(tiny_config, template, "front")
    out = export_peft(run, tmp_path / "adapter")
    prompt, metadata = RunFolder.open(run).load_prompt()
    peft_model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_gpt2, dtype=torch.float32), out
    ).eval()
    assert peft_model.peft_config["default"].base_model_name_or_path == metadata["model"]  # a local folder: as recorded

    frozen = load_model(tiny_gpt2, torch.device("cpu"), torch.float32)
    encoder = TemplateEncoder(Template.parse(template), frozen.tokenizer, prompt.shape[0])
    for x, y in TINY_PAIRS[:4] + [("New York", "Los Angeles")]:
        pair = encoder.encode(x, y)
        with torch.no_grad():
            ours = target_logits(frozen, encoder.collate([pair]), prompt)
            # PEFT is given everything after the prompt: promptgrad's very tokens, without the prompt positions
            ids = [t for t in pair.context if t != PROMPT_PLACEHOLDER] + pair.target[:-1]
            theirs = peft_model(input_ids=torch.tensor([ids])).logits[:, -len(pair.target) :]
        torch.testing.assert_close(theirs, ours, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("template", "bos", "why"),
    [
        (
            "Here are two {prompt} {x} and {y}",
            False,
            "puts it after 'Here are two': export only works for a template that starts with {prompt}",
        ),
        ("{prompt} {x} and {y}", True, "export only works for a model whose tokenizer adds no BOS token"),
    ],
    ids=["prompt-after-text", "bos"],
)
def test_a_context_peft_cannot_give_is_refused(tiny_config, template, bos, why, request, tmp_path):
    run = trained(tiny_config, template, "refused", request.getfixturevalue("bos_gpt2") if bos else None)
    with pytest.raises(UserError) as refused:
        export_peft(run, tmp_path / "adapter")
    message = str(refused.value)
    assert "\n" not in message and why in message and "outside promptgrad" in message
    assert not os.path.lexists(tmp_path / "adapter")


def test_an_occupied_destination_is_refused(tiny_config, tmp_path):
    run = trained(tiny_config, "{prompt} {x} and {y}", "front")
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "link").symlink_to(empty)
    for where, why in (
        (full, "is not empty"),
        (tmp_path / "link", "symbolic link"),
        (full / "notes.txt", "not a folder"),
    ):
        with pytest.raises(UserError, match=why) as refused:
            export_peft(run, where)
        assert "\n" not in str(refused.value)
    assert (full / "notes.txt").read_text() == "mine" and not any(empty.iterdir())
    assert (export_peft(run, empty) / "adapter_config.json").is_file()  # an empty folder is fine


def outside_code() -> str:
    """docs/outside.md's one python block between the markers."""
    readme = (ROOT / "docs" / "outside.md").read_text()
    assert START in readme and END in readme, "docs/outside.md has no outside-promptgrad section"
    section = readme.split(START, 1)[1].split(END, 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 1, "the outside-promptgrad section should hold exactly one python code block"
    return blocks[0]


def printed(f) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        f()
    return out.getvalue()


@pytest.mark.parametrize(
    ("template", "bos"),
    [
        ("Here are two {prompt} {x} and {y}", False),
        ("{x}{prompt} {y}", False),
        ("Here are two {prompt} {x} and {y}", True),
    ],
    ids=["prompt-in-the-middle", "x-first", "bos"],
)
def test_the_readme_code_answers_as_promptgrad_predict_does(tiny_config, template, bos, request):
    run = trained(tiny_config, template, "outside", request.getfixturevalue("bos_gpt2") if bos else None)
    words = ["hot", "purple", "New York"]  # seen in training, unseen, several tokens
    lines = printed(lambda: main(["predict", str(run), *words])).splitlines()
    code = compile(outside_code(), "docs/outside.md", "exec")
    answers = []
    for x, line in zip(words, lines, strict=True):
        head = template.split("{y}")[0].replace("{prompt}", "[prompt]").replace("{x}", x)  # the answer stands for {y}
        assert line.startswith(head), line
        answers.append(
            re.sub(r"   [✓✗] expected .*$", "", line.removeprefix(head))
        )  # a pair of the run's data is marked
        with torch.enable_grad():  # restores the grad mode the code turns off, for the tests that follow
            assert printed(lambda x=x: exec(code, {"run": str(run), "x": x})) == answers[-1] + "\n", x
    assert any(answers), "every answer empty: the comparison would prove little"


def card_code(adapter: Path) -> str:
    """The model card's one python block, after the marker that says the tests run it."""
    card = (adapter / "README.md").read_text()
    assert CODE_START in card, "the model card has no code to use the adapter with"
    blocks = re.findall(r"```python\n(.*?)```", card.split(CODE_START, 1)[1], re.DOTALL)
    assert blocks, "the model card's usage section holds no python block"
    return blocks[0]


@pytest.fixture(scope="module")
def answering_run(tiny_gpt2, tmp_path_factory) -> Path:
    """A small run trained long enough that the tiny model's answers depend on the input (a few steps
    leave it writing the same answer for everything, which any broken generation would match too)."""
    import json

    from promptgrad.config import TrainConfig

    tmp = tmp_path_factory.mktemp("answering")
    data = tmp / "pairs.jsonl"
    data.write_text("".join(json.dumps({"x": x, "y": y}) + "\n" for x, y in TINY_PAIRS))
    config = TrainConfig(
        task="antonyms",
        model=tiny_gpt2,
        data=str(data),
        template="{prompt} {x} -> {y}",
        steps=30,
        lr=0.3,
        batch_size=4,
        eval_every=0,
        checkpoint_every=0,
        num_predictions=0,
        nearest_k=0,
        precision="fp32",
        device="cpu",
        name="answering",
        runs_dir=str(tmp / "runs"),
    )
    list(train(config))
    return tmp / "runs" / "answering"


def test_peft_generate_writes_what_predict_writes(answering_run, tmp_path):
    """The model card's code (PeftModel.from_pretrained, then generate) answers every test input as
    `promptgrad predict` does. (PEFT 0.21's generate with its default cache, under transformers 5, puts
    the prompt in again at every new token: the first token right, then garbage.)"""
    out = export_peft(answering_run, tmp_path / "adapter")
    test_inputs = [p.x for p in RunFolder.open(answering_run).split().test]
    session, prompt = open_run(answering_run)  # what `promptgrad predict` runs
    predicted = [
        a.text for a in greedy_answers(session.frozen, session.encoder, test_inputs, prompt, session.eval_batch_size)
    ]
    assert len(set(predicted)) > 1, f"every answer alike ({predicted[0]!r}): the comparison would prove little"

    namespace: dict = {}
    shown = printed(lambda: exec(compile(card_code(out), "README.md", "exec"), namespace))
    assert shown.splitlines()[0] == f"{test_inputs[0]} -> {predicted[0]}"  # the card's own examples are test inputs
    assert [namespace["answer"](x) for x in test_inputs] == predicted


def test_an_export_whose_generate_differs_is_refused(answering_run, tmp_path, monkeypatch):
    import promptgrad.integrations.export

    monkeypatch.setattr(
        promptgrad.integrations.export, "peft_answers", lambda model, tokenizer, template, xs: ["garbage"] * len(xs)
    )
    with pytest.raises(UserError) as refused:
        export_peft(answering_run, tmp_path / "adapter")
    message = str(refused.value)
    assert (
        "\n" not in message
        and "generate()" in message
        and "'garbage'" in message
        and "no adapter was written" in message
    )
    assert not os.path.lexists(tmp_path / "adapter") and os.listdir(tmp_path) == []


def test_the_model_card_says_what_the_adapter_is(answering_run, tmp_path):
    out = export_peft(answering_run, tmp_path / "adapter")
    card = (out / "README.md").read_text()
    config = RunFolder.open(answering_run).config()
    assert "More Information Needed" not in card  # PEFT's blank template is gone
    for fact in (
        f"`{config.problem.task}`",
        f"`{config.problem.template}`",
        f"`{config.problem.model}`",
        "**Prompt length**: 4",
        f"promptgrad](https://pypi.org/project/promptgrad/) {__version__}",
        'template = "{prompt} {x} -> {y}"',
        "lr = 0.3",
        "steps = 30",
    ):
        assert fact in card, fact
    final = [e for e in RunFolder.open(answering_run).events() if isinstance(e, Evaluation) and e.step == 30]
    assert {e.prompt for e in final} == {
        "learned",
        "hand-written",
        "k-shot",
        "untrained",
    }  # no answer repeats: no majority
    rows = [line for line in card.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == len(final) and rows[0].startswith("| **learned")  # each prompt once, the learned one first
    for e in final:
        row = next(r for r in rows if (e.text or e.prompt) in r)
        assert f"{e.accuracy:.1%}" in row and (e.test_loss is None or f"{e.test_loss:.3f}" in row), (row, e)
    assert "local folder" in card and "base_model:" not in card  # not a hub id: the card says so, no hub link


def test_the_base_model_is_named_as_anyone_can_find_it(answering_run, tmp_path):
    assert public_name(BUNDLED_MODEL).name == BUNDLED_HUB_ID == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert all(public_name(old).name == BUNDLED_HUB_ID for old in OLD_BUNDLED_MODEL_NAMES)
    assert (public_name("gpt2").name, public_name("gpt2").kind) == ("gpt2", "hub")
    assert (public_name("./models/mine").name, public_name("./models/mine").kind) == ("./models/mine", "local")
    # the bundled model's card: the hub id, the de-quantised GGUF file, and the loader that gives its very weights
    folder = RunFolder.open(answering_run)
    facts = CardFacts(
        folder.config(),
        (answering_run / "config.toml").read_text(),
        folder.events(),
        public_name(BUNDLED_MODEL),
        4,
        576,
        "float32",
        "adapter",
        16,
    )
    card = model_card(facts, ["hot"])
    assert f"base_model: {BUNDLED_HUB_ID}" in card and "Q4_1 GGUF" in card and "de-quantised" in card
    assert f"model_source({BUNDLED_MODEL!r})" in card_code_of(card)


def card_code_of(card: str) -> str:
    return re.findall(r"```python\n(.*?)```", card.split(CODE_START, 1)[1], re.DOTALL)[0]


def test_a_bf16_run_is_exported_and_checked_in_bf16(answering_run, tmp_path):
    """The precision comes from facts.json (what `auto` became); the prompt's metadata does not hold it, so
    the card and the generate() check used to take every run as float32."""
    import json

    run = tmp_path / "bf16-run"
    shutil.copytree(answering_run, run)
    facts = json.loads((run / "facts.json").read_text())
    (run / "facts.json").write_text(json.dumps({**facts, "precision": "bf16"}))
    card = (export_peft(run, tmp_path / "adapter") / "README.md").read_text()
    assert "dtype=torch.bfloat16" in card and "dtype=torch.float32" not in card
