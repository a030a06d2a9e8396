"""Tasks that are never borrowed, and a user's own task files (docs/tasks.md).

`--data FILE` without a task is refused in one line until it has its own template and hand-written prompts
(it once took the antonyms task's silently); the default job is still the bundled antonyms; a task file
(`--task PATH.toml`) runs, is recorded whole in its run folder, sweeps, and appears in the TUI's picker.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from helpers import TINY_PAIRS

from promptgrad.cli.main import main
from promptgrad.config import TrainConfig
from promptgrad.store.run_facts import RunFacts
from promptgrad.store.run_folder import RunFolder

QUICK = [
    "--steps",
    "2",
    "--batch-size",
    "4",
    "--eval-every",
    "0",
    "--eval-size",
    "4",
    "--num-predictions",
    "1",
    "--nearest-k",
    "1",
    "--checkpoint-every",
    "0",
    "--precision",
    "fp32",
    "--device",
    "cpu",
    "--threads",
    "1",
]


def write_task(
    folder: Path,
    name: str,
    template: str = "{prompt} {x} -> {y}",
    baselines: str = '[" Opposites:"]',
    data: str = "pairs.jsonl",
    extra: str = "",
) -> Path:
    """A task file in `folder` over the tiny pairs, written as word/opposite columns to `data` beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / data).write_text("".join(json.dumps({"word": x, "opposite": y}) + "\n" for x, y in TINY_PAIRS))
    path = folder / f"{name}.toml"
    path.write_text(
        f'description = "a word -> its opposite"\ndata = "{data}"\ntemplate = "{template}"\n'
        f'baselines = {baselines}\nx_column = "word"\ny_column = "opposite"\n{extra}'
    )
    return path


# ---- no borrowed defaults -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given, missing",
    [
        ([], "give template and baseline_text"),
        (["--template", "{prompt} {x} -> {y}"], "give baseline_text ("),
        (["--baseline-text", " Opposites:"], "give template ("),
    ],
)
def test_data_without_a_task_is_one_line_exit_2_and_writes_nothing(
    tiny_gpt2, tiny_data, tmp_path, capsys, given, missing
):
    runs = tmp_path / "runs"
    code = main(["train", "--model", tiny_gpt2, "--data", tiny_data, "--runs-dir", str(runs), *given, *QUICK])
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("promptgrad: error: data "), (code, captured)
    assert missing in err[0] and "--task my-task.toml" in err[0] and "borrowed" in err[0]
    assert "Traceback" not in captured.err and captured.out == ""
    assert not runs.exists()  # no run folder made


def test_the_default_job_is_still_the_bundled_antonyms_and_a_bundled_name_as_data_is_that_task():
    job = TrainConfig().resolved().problem
    assert (job.task, job.data, job.template) == ("antonyms", "antonyms", "Here are two {prompt} {x} and {y}")
    assert job.baseline_text == [" antonyms", " words with opposite meanings:"]
    capitals = TrainConfig(data="capitals").resolved().problem  # once the antonyms' template, on capitals' pairs
    assert (capitals.task, capitals.template, capitals.baseline_text[0]) == (
        "capitals",
        "The {prompt} of {x} is {y}",
        " capital",
    )
    given = TrainConfig(data="capitals", template="{x}'s {prompt} is {y}").resolved().problem  # given: kept
    assert given.template == "{x}'s {prompt} is {y}" and given.baseline_text[0] == " capital"


# ---- a task file runs, recorded whole ------------------------------------------------------------------


def test_a_task_file_runs_and_its_run_folder_needs_it_no_more(tiny_gpt2, tmp_path, capsys, monkeypatch):
    task = write_task(tmp_path / "mine", "opposites")
    monkeypatch.chdir(tmp_path)  # the task file named relative to here, its data relative to its own folder
    runs = tmp_path / "runs"
    assert (
        main(
            [
                "train",
                "--task",
                "mine/opposites.toml",
                "--model",
                tiny_gpt2,
                "--runs-dir",
                str(runs),
                "--name",
                "run",
                *QUICK,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    # the first line: which task, template and hand-written prompts, so none is taken unseen
    assert out[0] == (
        f"task {task}: template '{{prompt}} {{x}} -> {{y}}', hand-written ' Opposites:'; data "
        f"{tmp_path / 'mine' / 'pairs.jsonl'} (columns word -> opposite)"
    )
    assert any("finished at step 2" in line for line in out)
    run = runs / "run"
    problem = RunFolder.open(run).config().problem  # the resolved values, not a reference to the file
    assert problem.task == str(task) and problem.data == str(tmp_path / "mine" / "pairs.jsonl")
    assert (problem.template, problem.baseline_text) == ("{prompt} {x} -> {y}", [" Opposites:"])
    assert (problem.x_column, problem.y_column) == ("word", "opposite")
    facts = RunFacts.load(run).data  # the task file's data, with the provenance every run's data has
    assert facts.source == problem.data and facts.n_pairs == len(TINY_PAIRS)
    evaluations = [e for e in RunFolder.open(run).events() if e.kind == "evaluation" and e.prompt == "hand-written"]
    assert evaluations and {e.text for e in evaluations} == {" Opposites:"}  # compared with its own prompt
    # the task file changed, then gone: the run folder means what it meant
    task.write_text(
        task.read_text()
        .replace("Opposites:", "Changed:")
        .replace('"word"', '"w"')
        .replace("{prompt} {x}", "{x} {prompt}")
    )
    assert RunFolder.open(run).config().resolved().problem == problem
    task.unlink()
    assert RunFolder.open(run).config().resolved().problem == problem
    assert main(["eval", str(run)]) == 0 and "' Opposites:'" in capsys.readouterr().out


@pytest.mark.parametrize(
    "content, words",
    [
        (
            'data = "pairs.jsonl"\ntemplate = "{prompt} {x} -> {y}"\nbaselines = [" a"]\nprompt = "x"\n',
            "unknown key 'prompt'",
        ),
        ('[mine]\ndata = "pairs.jsonl"\n', "drop the [mine] line"),
        ('data = "pairs.jsonl"\nbaselines = [" a"]\n', "has no template"),
        ('data = "pairs.jsonl"\ntemplate = "{x} -> {y}"\nbaselines = [" a"]\n', "template has no {prompt}"),
        (
            'data = "missing.jsonl"\ntemplate = "{prompt} {x} -> {y}"\nbaselines = [" a"]\n',
            "data 'missing.jsonl' does not exist",
        ),
        ('data = "pairs.jsonl"\ntemplate = "{prompt} {x} -> {y}"\nbaselines = []\n', "baselines must be a list"),
        ('data = "pairs.jsonl"\ntemplate = "{prompt} {x} -> {y}"\n', "has no baselines"),
        (
            'data = "pairs.jsonl"\ntemplate = "{prompt} {x} -> {y}"\nbaselines = [" a"]\n[scoring]\ncase = "ignore"\n',
            "scoring.case is not an accuracy setting",
        ),
        ('data = "pairs.jsonl\n', "is not valid TOML"),
    ],
)
def test_a_bad_task_file_is_one_line_naming_file_and_key(tiny_gpt2, tmp_path, capsys, content, words):
    (tmp_path / "pairs.jsonl").write_text('{"x": "hot", "y": "cold"}\n')
    task = tmp_path / "bad.toml"
    task.write_text(content)
    runs = tmp_path / "runs"
    code = main(["train", "--task", str(task), "--model", tiny_gpt2, "--runs-dir", str(runs), *QUICK])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 1 and f"task file {task}" in err[0] and words in err[0], (code, err)
    assert not runs.exists()


def test_promptgrad_tasks_lists_a_folders_task_files(tmp_path, capsys, monkeypatch):
    write_task(tmp_path / "tasks", "opposites")
    (tmp_path / "tasks" / "broken.toml").write_text('data = "pairs.jsonl"\n')
    monkeypatch.chdir(tmp_path)
    assert main(["tasks"]) == 0  # ./tasks, by default
    out = capsys.readouterr().out
    assert (
        "17 bundled tasks and 2 task file(s) in tasks" in out and "tasks/opposites.toml" in out and "hot -> cold" in out
    )
    assert f"left out: task file {tmp_path / 'tasks' / 'broken.toml'} has no template" in out
    assert main(["tasks", "tasks/opposites.toml"]) == 0
    assert "opposites: a word -> its opposite; 24 pairs" in capsys.readouterr().out
    assert main(["tasks", "--dir", str(tmp_path / "elsewhere")]) == 2


# ---- a sweep over task files ---------------------------------------------------------------------------


@pytest.mark.integration  # the sweep's runs are processes
def test_a_sweep_grids_task_files_each_with_its_own_template_and_prompts(tiny_gpt2, tmp_path, capsys, monkeypatch):
    from promptgrad.experiments.sweep import plan

    a = write_task(tmp_path / "tasks", "a", template="{prompt} {x} -> {y}", baselines='[" Opposites:"]', data="a.jsonl")
    b = write_task(
        tmp_path / "tasks",
        "b",
        template="{x} is the opposite of{prompt} {y}",
        baselines='[" the word"]',
        data="b.jsonl",
    )
    monkeypatch.chdir(tmp_path)
    sweep = plan("s", tmp_path / "runs", {"task": ["tasks/a.toml", "tasks/b.toml"]}, {})
    assert [p.settings["task"] for p in sweep.points] == [str(a), str(b)]  # relative paths made absolute
    assert [p.name.split("-")[0] for p in sweep.points] == ["a", "b"]
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    code = main(
        [
            "sweep",
            "grid",
            "--grid",
            "task=tasks/a.toml,tasks/b.toml",
            "--model",
            tiny_gpt2,
            "--runs-dir",
            str(tmp_path / "runs"),
            *QUICK,
        ]
    )
    assert code == 0, capsys.readouterr()
    runs = sorted((tmp_path / "runs" / "grid").glob("[ab]-*"))
    problems = [RunFolder.open(run).config().problem for run in runs]
    assert [(p.task, p.template, p.baseline_text) for p in problems] == [
        (str(a), "{prompt} {x} -> {y}", [" Opposites:"]),
        (str(b), "{x} is the opposite of{prompt} {y}", [" the word"]),
    ]
    assert [p.data for p in problems] == [str(tmp_path / "tasks" / "a.jsonl"), str(tmp_path / "tasks" / "b.jsonl")]


# ---- the TUI's picker ------------------------------------------------------------------------------------


@pytest.mark.tui
@pytest.mark.usefixtures("one_torch_thread")
def test_the_tuis_picker_lists_the_task_files_of_tasks_and_picks_one(tiny_config, tmp_path, monkeypatch):
    from textual.widgets import OptionList

    from promptgrad_tui.app import PromptgradApp
    from promptgrad_tui.task_picker import TaskPicker

    task = write_task(tmp_path / "tasks", "opposites")
    (tmp_path / "tasks" / "broken.toml").write_text('data = "pairs.jsonl"\n')
    monkeypatch.chdir(tmp_path)

    async def highlight(pilot, options, key: str) -> None:
        for _ in range(options.option_count):
            if options.get_option_at_index(options.highlighted).id == key:
                return
            await pilot.press("down")
        raise AssertionError(f"{key} is not in the picker")

    async def scenario():
        app = PromptgradApp(tiny_config.replace(x_column="left"))
        async with app.run_test(size=(120, 40)) as pilot:
            screen = app.main_screen
            await pilot.press("f3")
            picker = app.screen
            assert isinstance(picker, TaskPicker)
            options = picker.query_one(OptionList)
            await highlight(pilot, options, str(tmp_path / "tasks" / "broken.toml"))
            assert "has no template" in str(picker.query_one("#task-preview").render())
            await pilot.press("enter")
            assert app.screen is picker  # a broken task file is not picked
            await highlight(pilot, options, str(task))
            preview = str(picker.query_one("#task-preview").render())
            assert "24 pairs" in preview and "hot → cold" in preview and "'{prompt} {x} -> {y}'" in preview
            await pilot.press("enter")
            assert app.screen is screen
            fields = screen.form.config_fields
            assert fields["task"].value == str(task) and fields["data"].value == "" and fields["x_column"].value == "x"
            problem = screen.form.check().resolved().problem  # what a run started now would learn
            assert (problem.template, problem.baseline_text, problem.x_column) == (
                "{prompt} {x} -> {y}",
                [" Opposites:"],
                "word",
            )

    asyncio.run(scenario())
