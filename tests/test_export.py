"""A learned prompt used without promptgrad: as a PEFT adapter, and by the plain-transformers code of docs/outside.md."""

import contextlib
import io
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from conftest import TINY_PAIRS

from promptgrad.cli import main
from promptgrad.errors import UserError
from promptgrad.export import export_peft
from promptgrad.models import load_model
from promptgrad.objective import target_logits
from promptgrad.run_folder import RunFolder
from promptgrad.template import PROMPT_PLACEHOLDER, Template, TemplateEncoder
from promptgrad.training import train

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
    config = config.replace(template=template, steps=3, name=name, eval_every=0, num_predictions=0, nearest_k=0,
                            **({"model": model} if model else {}))
    list(train(config))
    return Path(config.machine.runs_dir) / name


def test_peft_adapter_gives_promptgrads_logits(tiny_config, tiny_gpt2, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    template = "{prompt} {x} and {y}"
    run = trained(tiny_config, template, "front")
    out = export_peft(run, tmp_path / "adapter")
    prompt, metadata = RunFolder.open(run).load_prompt()
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_gpt2, dtype=torch.float32), out).eval()
    assert peft_model.peft_config["default"].base_model_name_or_path == metadata["model_source"]

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


@pytest.mark.parametrize(("template", "bos", "why"), [
    ("Here are two {prompt} {x} and {y}", False, "puts it after 'Here are two': export only works for a template that starts with {prompt}"),
    ("{prompt} {x} and {y}", True, "export only works for a model whose tokenizer adds no BOS token"),
], ids=["prompt-after-text", "bos"])
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
    for where, why in ((full, "is not empty"), (tmp_path / "link", "symbolic link"), (full / "notes.txt", "not a folder")):
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


@pytest.mark.parametrize(("template", "bos"), [("Here are two {prompt} {x} and {y}", False), ("{x}{prompt} {y}", False),
                                               ("Here are two {prompt} {x} and {y}", True)],
                         ids=["prompt-in-the-middle", "x-first", "bos"])
def test_the_readme_code_answers_as_promptgrad_predict_does(tiny_config, template, bos, request):
    run = trained(tiny_config, template, "outside", request.getfixturevalue("bos_gpt2") if bos else None)
    words = ["hot", "purple", "New York"]  # seen in training, unseen, several tokens
    lines = printed(lambda: main(["predict", str(run), *words])).splitlines()
    code = compile(outside_code(), "docs/outside.md", "exec")
    answers = []
    for x, line in zip(words, lines, strict=True):
        head = template.split("{y}")[0].replace("{prompt}", "[prompt]").replace("{x}", x) + "-> "
        assert line.startswith(head), line
        answers.append(line.removeprefix(head))
        with torch.enable_grad():  # restores the grad mode the code turns off, for the tests that follow
            assert printed(lambda x=x: exec(code, {"run": str(run), "x": x})) == answers[-1] + "\n", x
    assert any(answers), "every answer empty: the comparison would prove little"
