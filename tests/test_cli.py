"""The command line: each kind of bad input is one line on stderr, exit status 2, and damages nothing."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from promptgrad.cli.main import main


def tiny_args(config, *extra):
    return [
        "train",
        "--task",
        "antonyms",
        "--model",
        config.problem.model,
        "--data",
        config.problem.data,
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--eval-size",
        "4",
        "--precision",
        "fp32",
        "--runs-dir",
        config.machine.runs_dir,
        *extra,
    ]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--template", "Here are two {x} and {y}"], "template has no {prompt}"),
        (["--template", "Here are two {prompt} and {y}"], "template has no {x}"),
        (["--template", "Here are two {prompt} {x}"], "template has no {y}"),
        (["--prompt-len", "0"], "prompt_len must be at least 1"),
        (["--lr", "-0.1"], "lr must be a number above 0"),
        (["--lr", "0"], "lr must be a number above 0"),
        (["--lr", "inf"], "lr must be a number above 0 and at most 10"),
        (["--lr", "nan"], "lr must be a number above 0 and at most 10"),
        (["--lr", "1e6"], "lr must be a number above 0 and at most 10"),
        (["--checkpoint-minutes", "-1"], "checkpoint_minutes must be 0"),
        (["--precision", "fp8"], "precision must be"),
        (["--data", "/nonexistent/pairs.jsonl"], "does not exist"),
        (["--x-column", "word"], "has no column 'word'"),
        (["--prompt-len", "four"], "prompt_len must be int"),
        (["--model", "/nonexistent/model-folder"], "smollm2-135m"),
        (["--resume", "/tmp"], "is not a run folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tiny_config, capsys, extra, message):
    assert main(tiny_args(tiny_config, *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0], err


def test_empty_data_file(tiny_config, tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(tiny_args(tiny_config, "--data", str(empty))) == 2
    assert "holds no pairs" in capsys.readouterr().err


def test_bad_input_leaves_an_existing_run_untouched(tiny_config, capsys):
    assert main(tiny_args(tiny_config, "--name", "keep")) == 0
    run = f"{tiny_config.machine.runs_dir}/keep"
    before = {
        p: open(f"{run}/{p}", "rb").read()
        for p in ("config.toml", "metrics.jsonl", "prompt.safetensors", "checkpoint.pt")
    }
    assert main(tiny_args(tiny_config, "--name", "keep")) == 2  # same name again: refused
    assert "already exists" in capsys.readouterr().err
    assert main(["train", "--resume", run, "--prompt-len", "0"]) == 2  # bad override on resume
    assert main(["train", "--resume", run, "--data", "/nonexistent.jsonl"]) == 2
    after = {p: open(f"{run}/{p}", "rb").read() for p in before}
    assert after == before


def test_train_eval_predict_nearest(tiny_config, capsys):
    assert main(tiny_args(tiny_config, "--name", "cli")) == 0
    out = capsys.readouterr().out
    assert "hand-written prompt ' antonyms': test loss" in out and "finished at step 2" in out
    run = f"{tiny_config.machine.runs_dir}/cli"
    assert main(["eval", run]) == 0
    out = capsys.readouterr().out
    assert "learned" in out and "hand-written" in out
    assert main(["predict", run, "hot", "big"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    assert main(["nearest", run, "-k", "2"]) == 0
    assert "cosine" in capsys.readouterr().out
    assert main(["eval", "/tmp"]) == 2


def test_config_file_and_overrides(tiny_config, tmp_path, capsys):
    config_file = tmp_path / "run.toml"
    tiny_config.replace(steps=1, name="from-file").save(config_file)
    assert main(["train", "--config", str(config_file), "--seed", "3"]) == 0
    from promptgrad.store.run_folder import RunFolder

    saved = RunFolder.open(f"{tiny_config.machine.runs_dir}/from-file").config()
    assert saved.learning.seed == 3 and saved.learning.steps == 1 and saved.problem.model == tiny_config.problem.model
    bad = tmp_path / "bad.toml"
    bad.write_text("lr = \n")
    assert main(["train", "--config", str(bad)]) == 2
    bad.write_text("learning_rate = 0.1\n")
    assert main(["train", "--config", str(bad)]) == 2
    assert "unknown setting 'learning_rate'" in capsys.readouterr().err


def test_module_entry_point_runs_without_a_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "promptgrad", "train", "--prompt-len", "0"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "promptgrad: error: prompt_len must be at least 1, got 0"


def test_data_lines_that_are_not_objects_are_named_by_number(tiny_config, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"x": "hot", "y": "cold"}\n5\n')
    assert main(tiny_args(tiny_config, "--data", str(bad))) == 2
    assert "line 2 is 5, not an object" in capsys.readouterr().err


def test_too_few_pairs_are_counted_after_removing_duplicates(tiny_config, tmp_path, capsys):
    repeated = tmp_path / "repeated.jsonl"
    repeated.write_text('{"x": "hot", "y": "cold"}\n' * 10)
    assert main(tiny_args(tiny_config, "--data", str(repeated))) == 2
    assert "1 distinct pairs (10 rows with duplicates removed) are too few" in capsys.readouterr().err


def test_data_text_is_shown_literally_never_as_markup(tiny_config, tmp_path, capsys):
    from helpers import TINY_PAIRS

    data = tmp_path / "markup.jsonl"
    rows = [(f"[/oops]{x}", f"[bold]{y}") for x, y in TINY_PAIRS]  # whichever land in the test set, they have markup
    data.write_text("".join(json.dumps({"x": x, "y": y}) + "\n" for x, y in rows))
    # one demonstration: three of these longer pairs would not fit the tiny model's 64 tokens (that refusal is
    # tested in test_baselines.py)
    assert main(tiny_args(tiny_config, "--data", str(data), "--num-predictions", "2", "--k-shot", "1")) == 0
    out = capsys.readouterr().out
    assert "  [/oops]" in out  # the predictions line shows the input as it is


def test_a_non_finite_loss_ends_the_run_without_saving_that_prompt(tiny_config, monkeypatch, capsys):
    import torch

    import promptgrad.learners.learner

    real = promptgrad.learners.learner.target_loss_sum

    def poisoned(frozen, batch, vectors):
        total, count = real(frozen, batch, vectors)
        return total * torch.tensor(float("nan")), count

    monkeypatch.setattr(promptgrad.learners.learner, "target_loss_sum", poisoned)
    assert main(tiny_args(tiny_config, "--name", "nan")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "became nan at step 1" in err[0] and "not saved" in err[0], err
    assert "precision fp32" not in err[0]  # the run is fp32 already: no such advice
    assert not (Path(tiny_config.machine.runs_dir) / "nan" / "prompt.safetensors").exists()


def test_a_hub_id_this_machine_cannot_reach_is_one_clear_line_within_seconds(tiny_config, monkeypatch, capsys):
    import time

    import promptgrad.hub

    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: the hub is unreachable
    monkeypatch.setattr(promptgrad.hub, "_HUB_REACHABLE", None)
    started = time.monotonic()
    assert main(tiny_args(tiny_config, "--model", "smollm2-135")) == 2
    assert time.monotonic() - started < 10
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot be reached from here and the model is not in the local cache" in err[0], err
    assert main(tiny_args(tiny_config, "--model", "/tmp/nope/model")) == 2  # a path: said without trying the hub
    assert "model folder /tmp/nope/model does not exist" in capsys.readouterr().err


def test_eval_scores_each_run_in_its_own_template(tiny_config, capsys, monkeypatch):
    assert main(tiny_args(tiny_config, "--name", "plain")) == 0
    assert main(tiny_args(tiny_config, "--name", "other", "--template", "{prompt} {x} is the opposite of {y}")) == 0
    capsys.readouterr()
    monkeypatch.chdir(tiny_config.machine.runs_dir)  # short names: a table row is never folded

    def soft_loss(out: str) -> str:
        return next(line for line in out.splitlines() if "soft" in line and "plain" not in line).split("│")[2].strip()

    assert main(["eval", "other"]) == 0
    alone = soft_loss(capsys.readouterr().out)
    assert main(["eval", "plain", "other"]) == 0
    beside = soft_loss(capsys.readouterr().out)
    assert beside == alone


# ---- every subcommand: one line, the right kind -----------------------------------------------------


def test_a_second_ctrl_c_during_a_checkpoint_leaves_no_temporary_file_and_no_false_record(tiny_config, tmp_path):
    entry = Path(__file__).with_name("slow_entry.py")
    done = subprocess.run(
        [
            sys.executable,
            str(entry),
            "cli",
            *tiny_args(tiny_config, "--steps", "6", "--checkpoint-every", "2", "--name", "twice"),
        ],
        env={**__import__("os").environ, "INTERRUPT_IN_CHECKPOINT": "1", "SLOW_STEP_SECONDS": "0"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    run = Path(tiny_config.machine.runs_dir) / "twice"
    assert done.returncode == 130, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and done.stderr.strip().splitlines()[-1].startswith("promptgrad: aborted")
    assert not [p.name for p in run.iterdir() if ".tmp" in p.name]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    checkpoints = [r["step"] for r in records if r["event"] == "checkpoint"]
    import torch

    assert checkpoints and torch.load(run / "checkpoint.pt", weights_only=True)["step"] == checkpoints[-1]
    assert main(["train", "--resume", str(run)]) == 0  # and the run goes on from it


@pytest.fixture()
def soft_run(tiny_config) -> Path:
    assert main(tiny_args(tiny_config, "--name", "soft")) == 0
    return Path(tiny_config.machine.runs_dir) / "soft"


def one_line(capsys, code: int, status: int, expected: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == status and len(err) == 1 and expected in err[0] and "Traceback" not in err[0], (code, err)
    return err[0]


def test_a_prompt_of_another_model_is_one_line_in_every_subcommand(soft_run, capsys):
    from safetensors.torch import load_file, save_file

    from promptgrad.store.run_folder import load_prompt

    prompt, metadata = load_prompt(soft_run / "prompt.safetensors")
    save_file(
        {"prompt": load_file(soft_run / "prompt.safetensors")["prompt"][:, :32].contiguous()},
        soft_run / "prompt.safetensors",
        metadata=metadata,
    )
    capsys.readouterr()
    for command in (
        ["nearest", str(soft_run)],
        ["predict", str(soft_run), "hot"],
        ["eval", str(soft_run)],
        ["explain", str(soft_run), "--samples", "2"],
    ):
        one_line(capsys, main(command), 2, "belongs to another model")


def test_nearest_k_below_one_is_one_line(soft_run, capsys):
    capsys.readouterr()
    one_line(capsys, main(["nearest", str(soft_run), "-k", "-1"]), 2, "-k must be at least 1")


@pytest.mark.parametrize(
    "key, value",
    [
        ("hard_prompt_ids", '[1, "x"]'),
        ("hard_prompt_ids", "not json"),
        ("hard_prompt_ids", "[99999999]"),
        ("fluency", "heavy"),
        ("pareto_front", '[{"ids": [1]}]'),
    ],
)
def test_eval_on_damaged_hard_prompt_metadata_is_one_line(soft_run, capsys, key, value):
    from safetensors.torch import load_file, save_file

    from promptgrad.store.run_folder import load_prompt

    _, metadata = load_prompt(soft_run / "prompt.safetensors")
    hard = {
        **metadata,
        "mode": "hard",
        "method": "gcg",
        "hard_prompt_ids": "[11, 12]",
        "hard_prompt_text": " ab",
        "fluency": "0.0",
        "pareto_front": "[]",
        key: value,
    }
    save_file(load_file(soft_run / "prompt.safetensors"), soft_run / "prompt.safetensors", metadata=hard)
    capsys.readouterr()
    one_line(capsys, main(["eval", str(soft_run)]), 2, "damaged hard-prompt metadata")


def test_a_read_only_file_system_is_named_not_called_a_bug(soft_run, capsys, monkeypatch):
    import errno

    import promptgrad.files

    real = promptgrad.files.open_regular  # every file of a run folder is opened by it (files.Folder too)

    def read_only(path, flags=0, mode=0o644, *args, **kwargs):
        if flags & (__import__("os").O_WRONLY | __import__("os").O_RDWR):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(promptgrad.files, "open_regular", read_only)
    capsys.readouterr()
    line = one_line(capsys, main(["train", "--resume", str(soft_run), "--steps", "4"]), 2, "Read-only file system")
    assert "writable disk" in line and "report it" not in line


def test_a_nul_byte_in_a_name_is_one_line(tiny_config, tmp_path, capsys):
    config = tmp_path / "nul.toml"
    config.write_text('name = "a\\u0000b"\n')
    one_line(capsys, main(tiny_args(tiny_config, "--config", str(config))), 2, "NUL byte")
    one_line(capsys, main(["eval", "runs/a\x00b"]), 2, "NUL byte")
    one_line(capsys, main(["train", "--resume", "runs/a\x00b"]), 2, "NUL byte")


def test_the_split_is_saved_and_eval_scores_any_file(soft_run, tmp_path, capsys):
    from promptgrad.store.run_facts import RunFacts

    lines = [json.loads(line) for line in (soft_run / "split.jsonl").read_text().splitlines()]
    sides = [line["side"] for line in lines]
    assert set(sides) == {"train", "test"} and sides == sorted(sides, key=["train", "test"].index)
    assert len(lines) == len({(line["x"], line["y"]) for line in lines})  # each pair on one side only
    started = json.loads((soft_run / "metrics.jsonl").read_text().splitlines()[0])
    assert sides.count("train") == started["n_train"] and sides.count("test") == started["n_test"]
    assert RunFacts.load(soft_run).data.n_pairs == len(lines)
    other = tmp_path / "other.jsonl"
    other.write_text('{"x": "wet", "y": "dry"}\n{"x": "early", "y": "late"}\n{"x": "near", "y": "far"}\n')
    capsys.readouterr()
    assert main(["eval", str(soft_run), "--data", str(other)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    trained = {(line["x"], line["y"]) for line in lines if line["side"] == "train"}
    seen = len({("wet", "dry"), ("early", "late")} & trained)  # near -> far is in no split: always held out
    assert f"{3 - seen} pairs of {other}" in out and "soft (learned vectors)" in out
    assert f"{seen} of the file's 3 pairs are training pairs of the run" in out


def test_threads_sets_pytorchs_cpu_threads(tiny_config):
    import torch

    before = torch.get_num_threads()
    try:
        assert main(tiny_args(tiny_config, "--threads", "1", "--name", "one-thread")) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
