"""Trust round 3 (issue 27): inputs aimed at the newer surfaces (eval's outputs, sweeps, reports, numbers
read back, names, data files). Each case failed on the code before it: a run's history overwritten, a
copied or outdated run counted as finished, a traceback, a formula or a script carried into a report, a
second run of one grid point started. Every refusal is one line, exit status 2, and nothing is lost:
the files of the run folders involved keep their bytes and times.

Run folders are written by hand where a real one is not needed (a config.toml and the events of a
finished run); only the sweep killed alone runs the tiny GPT-2.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from promptgrad.cli.main import main
from promptgrad.config import TrainConfig
from promptgrad.errors import UserError

TESTS = Path(__file__).parent


# ---- hand-written run folders ------------------------------------------------------------------------


def finished_events(folder: Path, seed: int = 0, **changes: str) -> list[str]:
    """The lines of a finished run's metrics.jsonl; `changes` replaces a line's text by its event name."""
    lines = {
        "started": json.dumps(
            {
                "event": "started",
                "run_dir": str(folder),
                "model": "gpt2",
                "device": "cpu",
                "precision": "fp32",
                "n_train": 80,
                "n_test": 20,
                "total_steps": 4,
                "start_step": 0,
                "steps_per_epoch": 3,
            }
        ),
        "step": json.dumps(
            {
                "event": "step",
                "step": 4,
                "epoch": 1.3,
                "loss": 1.5,
                "lr": 0.0,
                "examples_per_s": 10.0,
                "elapsed_s": 9.0,
                "eta_s": 0.0,
            }
        ),
        "evaluation": json.dumps(
            {
                "event": "evaluation",
                "step": 4,
                "prompt": "learned",
                "test_loss": 1.0 + seed,
                "accuracy": 0.5,
                "n_pairs": 20,
                "best_test_loss": 1.0,
                "text": "",
            }
        ),
        "finished": json.dumps(
            {"event": "finished", "step": 4, "stopped": False, "test_loss": 1.0, "accuracy": 0.5, "prompt_path": ""}
        ),
    }
    lines.update(changes)
    return list(lines.values())


def write_run(folder: Path, config: TrainConfig, lines: list[str] | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text(config.dumps())
    (folder / "metrics.jsonl").write_text(
        "".join(line + "\n" for line in (lines or finished_events(folder, config.learning.seed)))
    )
    return folder


def hand_config(**settings) -> TrainConfig:
    return TrainConfig(
        **{
            "model": "gpt2",
            "data": "/data/capitals.jsonl",
            "template": "{x} {prompt} {y}",
            "baseline_text": [" capital:"],
            **settings,
        }
    )


def fingerprint(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file below a folder: its bytes and modification time (a rewrite with the same bytes shows too)."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("promptgrad: error: "), err
    return err[0]


# ---- high: eval's outputs never land in a run folder, and are checked before scoring ------------------------


@pytest.mark.parametrize(
    "flag, target, message",
    [
        ("--csv", "RUN/metrics.jsonl", "is inside run folder"),
        ("--json", "RUN/metrics.jsonl", "is inside run folder"),
        ("--csv", "RUN/eval.csv", "is inside run folder"),  # a new file in the run's own folder
        ("--json", "OTHER/eval.json", "is inside run folder"),  # another run's folder
        ("--csv", "LINKED/eval.csv", "is inside run folder"),  # a folder that is a link into a run folder
        ("--json", "FOLDER", "is a folder"),  # an existing folder: refused before, not after, the scoring
    ],
)
def test_eval_outputs_never_land_in_a_run_folder_and_are_checked_before_scoring(
    tmp_path, capsys, monkeypatch, flag, target, message
):
    run = write_run(tmp_path / "runs" / "a", hand_config())
    other = write_run(tmp_path / "runs" / "b", hand_config(seed=1))
    (tmp_path / "FOLDER").mkdir()
    (tmp_path / "LINKED").symlink_to(other, target_is_directory=True)
    path = target.replace("RUN", str(run)).replace("OTHER", str(other))
    path = path if path.startswith("/") else str(tmp_path / path)

    def scoring(*args, **kwargs):  # where the minutes of scoring would begin
        raise UserError("reached the scoring")

    monkeypatch.setattr("promptgrad.cli.main.open_run", scoring)
    before = fingerprint(tmp_path / "runs")
    assert main(["eval", str(run), flag, path]) == 2
    line = one_error_line(capsys)
    assert message in line and "reached the scoring" not in line, line
    assert fingerprint(tmp_path / "runs") == before
    # a user's own config.toml beside the output does not make its folder a run folder
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.toml").write_text("steps = 3\n")
    assert main(["eval", str(run), flag, str(tmp_path / "mine" / "eval.out")]) == 2
    assert "reached the scoring" in one_error_line(capsys)
    assert main(["eval", str(run), "--json", str(tmp_path / "t"), "--csv", str(tmp_path / "t")]) == 2
    assert "--json and --csv both name" in one_error_line(capsys)


# ---- high: a sweep keeps, resumes or counts a run folder only if it is its grid point's run ----------------


def finished_sweep(runs_dir: Path):
    """A sweep of two seeds whose run folders are written by hand as finished runs of their grid points."""
    from promptgrad.experiments.sweep import open_sweep

    sweep = open_sweep(
        "s",
        runs_dir,
        ["seed=0,1"],
        {"task": "capitals", "steps": 4, "device": "cpu", "precision": "auto"},
        resume=False,
    )
    for point in sweep.points:
        config = (
            TrainConfig()
            .replace(**{**point.settings, "precision": "fp32"}, name=point.name, runs_dir=str(sweep.folder))
            .resolved()
        )
        write_run(sweep.folder / point.name, config)
    return sweep


def test_a_sweep_refuses_a_run_folder_that_is_not_its_grid_points_run(tmp_path, capsys):
    runs_dir = tmp_path / "runs"
    sweep = finished_sweep(runs_dir)
    resume = ["sweep", "s", "--resume", "--runs-dir", str(runs_dir)]
    assert main(resume) == 0 and "2 of 2 runs finished" in capsys.readouterr().out  # the runs as the grid made them
    spec = (sweep.folder / "sweep.toml").read_text()
    runs = lambda: {k: v for k, v in fingerprint(sweep.folder).items() if "/" in k}  # the run folders' files
    before = runs()
    # sweep.toml edited: its runs are no longer its grid's
    (sweep.folder / "sweep.toml").write_text(spec.replace("steps = 4", "steps = 3"))
    assert main(resume) == 2
    line = one_error_line(capsys)
    assert "seed0 is not the run of its grid point: its config.toml has steps 4, its grid point steps 3" in line, line
    assert "and 1 other run folder(s) differ too" in line
    assert runs() == before  # refused before any run folder was opened for writing: nothing lost
    (sweep.folder / "sweep.toml").write_text(spec)
    # another seed's run copied into a grid point's folder
    shutil.rmtree(sweep.folder / "seed0")
    shutil.copytree(sweep.folder / "seed1", sweep.folder / "seed0")
    copied = runs()
    assert main(resume) == 2
    assert (
        "seed0 is not the run of its grid point: its config.toml has seed 1, its grid point seed 0"
        in one_error_line(capsys)
    )
    assert runs() == copied


# ---- medium: one parser for numbers read back; a damaged line is named once and skipped ----------------------

HUGE = "1" + "0" * 400  # a valid JSON and TOML integer, beyond a float's range


STEP = '{"event": "step", "step": STEP, "epoch": 1.0, "loss": LOSS, "lr": 0.0, "examples_per_s": 1.0, "elapsed_s": 1.0, "eta_s": 0.0}'
NAN_ACCURACY = (
    '{"event": "evaluation", "step": 4, "prompt": "hand-written", "test_loss": 2.0, "accuracy": NaN, '
    '"n_pairs": 20, "best_test_loss": 1.0, "text": " capital:"}'
)


@pytest.mark.parametrize(
    "line",
    [
        STEP.replace("STEP", "3").replace("LOSS", HUGE),  # a loss beyond the float range: OverflowError before
        STEP.replace("STEP", HUGE).replace("LOSS", "1.0"),  # a step beyond any count
        STEP.replace("STEP", "3").replace("LOSS", '"1.0"'),  # a string where a number belongs
        NAN_ACCURACY,  # NaN where it cannot be (a loss may be NaN: a diverged run)
    ],
)
def test_a_damaged_number_is_a_damaged_line_named_once_and_skipped(tmp_path, capsys, line):
    from promptgrad.store.run_folder import EventFollower, read_events, summarize

    run = tmp_path / "runs" / "a"
    lines = finished_events(run)
    lines.insert(2, line)  # the third line of metrics.jsonl
    write_run(run, hand_config(), lines)
    events, bad = read_events(run / "metrics.jsonl")
    assert bad == [3] and [e.kind for e in events] == ["started", "step", "evaluation", "finished"]
    assert summarize(run).state == "finished"  # what a sweep's --resume reads
    assert EventFollower(run / "metrics.jsonl").poll()[1] == [3]  # what the TUI reads
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert out.count("metrics.jsonl line(s) 3: damaged, not events") == 1, out


def test_damaged_numbers_in_settings_files_and_checkpoints_are_one_line(tmp_path, capsys):
    from promptgrad.store.run_folder import load_checkpoint, summarize

    run = write_run(tmp_path / "runs" / "a", hand_config())
    (run / "config.toml").write_text((run / "config.toml").read_text().replace("steps = ", f"steps = {HUGE}\n# ", 1))
    assert summarize(run).state == "damaged" and "beyond any count" in summarize(run).problem
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "report")]) == 2
    assert "beyond any count" in one_error_line(capsys)
    torch.save({"step": int(HUGE), "rng": torch.get_rng_state()}, run / "checkpoint.pt")
    with pytest.raises(UserError, match="damaged: its step is an integer of 401 digits"):
        load_checkpoint(run / "checkpoint.pt")
    from promptgrad.experiments.sweep import open_sweep

    sweep = open_sweep("s", tmp_path / "runs", ["seed=0,1"], {"task": "capitals"}, resume=False)
    (sweep.folder / "sweep.toml").write_text((sweep.folder / "sweep.toml").read_text() + "lr = 1e400\n")
    assert main(["sweep", "s", "--resume", "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "[settings].lr is inf" in one_error_line(capsys)


# ---- medium and low: grids and names a sweep refuses in one line ------------------------------------------


@pytest.mark.parametrize(
    "grid, message",
    [
        ("seed = []", "--grid seed has no values"),
        ('runs_dir = ["ELSEWHERE"]', "runs_dir cannot be gridded"),
        ('task = ["capitals\\u001b[31m"]', "holds the control character '\\x1b'"),
        ('task = ["capitals\\u0000"]', "holds the control character '\\x00'"),
    ],
)
def test_a_hostile_sweep_toml_is_one_line(tmp_path, capsys, grid, message):
    folder = tmp_path / "runs" / "s"
    folder.mkdir(parents=True)
    grid = grid.replace("ELSEWHERE", str(tmp_path / "elsewhere"))
    # a model that is not there: code that let the grid through fails its runs fast, not after training them
    (folder / "sweep.toml").write_text(f'[grid]\n{grid}\n\n[settings]\nsteps = 4\nmodel = "{tmp_path / "no-model"}"\n')
    before = fingerprint(folder)
    assert main(["sweep", "s", "--resume", "--runs-dir", str(tmp_path / "runs")]) == 2
    assert message in one_error_line(capsys)
    assert [p.name for p in folder.iterdir()] == ["sweep.toml"] and fingerprint(folder) == before
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize(
    "name, grid, message",
    [
        ("a\nb", "seed=0", "the sweep's NAME must hold no control characters"),
        ("a\x1b[2Jb", "seed=0", "the sweep's NAME must hold no control characters"),
        ("", "seed=0", "the sweep's NAME is empty"),
        ("s", "task=capitals\x07", "holds the control character '\\x07'"),
    ],
)
def test_sweep_names_and_grid_values_with_control_characters_are_refused(tmp_path, name, grid, message):
    from promptgrad.experiments.sweep import open_sweep

    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    with pytest.raises(UserError, match=re.escape(message)) as caught:
        open_sweep(name, runs_dir, [grid], {}, resume=False)
    assert "\n" not in str(caught.value) and not any(runs_dir.iterdir())  # one line; nothing written


def test_a_run_name_with_a_control_character_is_refused():
    with pytest.raises(UserError, match="name must hold no control characters"):
        TrainConfig(name="run\nname")
    assert TrainConfig(name="").machine.name == ""  # empty: a timestamp, as before


def test_a_template_in_a_grid_may_hold_a_newline(tmp_path):
    from promptgrad.experiments.sweep import plan

    sweep = plan("s", tmp_path, {"template": ["{prompt}\n{x}\t{y}"]}, {"task": "capitals"})
    assert sweep.points[0].settings["template"] == "{prompt}\n{x}\t{y}"


# ---- medium: report cells neutralised for spreadsheets, escaped for Markdown; plots never overwrite ----------


def test_report_cells_cannot_run_as_formulas_or_html_and_plots_never_overwrite_each_other(tmp_path):
    import csv

    from promptgrad.experiments.plots import draw
    from promptgrad.experiments.results import collect

    runs = tmp_path / "runs"
    formula, script = '=HYPERLINK("evil.example","x")', "<script>alert(1)</script>"
    for name, data, wording in (
        ("formula", f"/data/{formula}.jsonl", "=cmd|' -C calc'!A0"),
        ("script", f"/data/{script.replace('/', '')}.jsonl", script),
        ("spaced", "/data/x y.jsonl", "@SUM(1)"),
        ("dashed", "/data/x-y.jsonl", "+1"),
        ("numbered", "/data/x-y-2.jsonl", "-1"),
    ):
        folder = runs / name
        lines = finished_events(folder)
        lines.insert(
            3,
            json.dumps(
                {
                    "event": "evaluation",
                    "step": 4,
                    "prompt": "hand-written",
                    "test_loss": 2.0,
                    "accuracy": 0.1,
                    "n_pairs": 20,
                    "best_test_loss": 1.0,
                    "text": wording,
                }
            ),
        )
        write_run(folder, hand_config(data=data, baseline_text=[wording]), lines)
    results = collect([runs])
    cells = [cell for row in csv.reader(results.csv().splitlines()) for cell in row]
    dangerous = [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r") or (c[:1] == "-" and not is_number(c))]
    assert not dangerous, dangerous
    assert "'" + formula in cells and "'=cmd|' -C calc'!A0" in cells and "'@SUM(1)" in cells
    markdown = results.markdown()
    assert "<script>" not in markdown and "&lt;script&gt;alert(1)&lt;" in markdown
    files = draw(results)
    assert len(files) == 2 * 5  # a compare- and a loss- plot for each of the five tasks, none overwritten
    assert "compare-x-y.svg" in files and "compare-x-y-2.svg" in files


def is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


# ---- low: a sweep's --jobs beyond the cores is said; a file named .parquet that is not one is one line ----


def test_more_jobs_than_cores_is_said(tmp_path):
    from promptgrad.experiments.sweep import plan
    from promptgrad.experiments.sweep_pool import local_slots

    sweep = plan("s", tmp_path, {"seed": ["0", "1"]}, {"device": "cpu", "task": "capitals"})
    slots, how = local_slots(sweep, 99, [], 2)
    assert len(slots) == 99  # as asked (capping would be a second guess); said, not silent
    assert "warning: --jobs 99 is more than the 2 cores here" in how and "\n" not in how
    assert "warning" not in local_slots(sweep, 2, [], 2)[1]


def test_a_file_named_parquet_that_is_not_one_is_one_line(tmp_path, capfd):
    from promptgrad.problem.pairs import load_pairs

    fake = tmp_path / "pairs.parquet"
    fake.write_text('{"x": "hot", "y": "cold"}\n')
    with pytest.raises(UserError, match="cannot be read as a parquet file") as caught:
        load_pairs(str(fake))
    out, err = capfd.readouterr()
    assert "\n" not in str(caught.value) and err == "" and out == ""  # datasets' own logged error is not a second line


# ---- low: a sweep killed alone and started again at once never runs one grid point twice ---------------------


@pytest.mark.integration
def test_a_sweep_killed_alone_and_restarted_at_once_does_not_start_its_live_run_twice(tiny_config, tmp_path):
    """The run the killed sweep started is still starting (not yet holding its folder's lock): it holds
    the sweep's lock, which it inherited, so the new sweep is refused in one line rather than starting
    a second copy of it."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(  # each `promptgrad train` child starts slowly: a window before its lock
        "import time\nif b'train' in open('/proc/self/cmdline', 'rb').read().split(b'\\0'):\n    time.sleep(6)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(hook)}
    runs_dir = Path(tiny_config.machine.runs_dir)
    args = [
        "sweep",
        "alone",
        "--grid",
        "seed=0",
        "--model",
        tiny_config.problem.model,
        "--task",
        "antonyms",
        "--data",
        tiny_config.problem.data,
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
        "--precision",
        "fp32",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--runs-dir",
        str(runs_dir),
    ]
    sweep = subprocess.Popen(
        [sys.executable, "-m", "promptgrad", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    log = runs_dir / "alone" / "logs" / "seed0.log"
    try:
        deadline = time.monotonic() + 240
        while not (log.exists() and "promptgrad train" in log.read_text()):
            assert sweep.poll() is None and time.monotonic() < deadline, "the sweep never started its run"
            time.sleep(0.05)
        os.kill(sweep.pid, signal.SIGKILL)  # the sweep alone; its run goes on
        sweep.wait(30)
        again = subprocess.run(
            [sys.executable, "-m", "promptgrad", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        err = again.stderr.strip().splitlines()
        assert again.returncode == 2 and len(err) == 1 and "is being run by" in err[0], (
            again.returncode,
            again.stdout,
            err,
        )
        assert log.read_text().count("promptgrad sweep alone: starting") == 1  # one start of the one grid point
    finally:
        try:
            os.killpg(sweep.pid, signal.SIGKILL)  # the orphaned run, in the sweep's process group
        except ProcessLookupError:
            pass


def test_a_diverged_runs_nan_loss_is_still_read():
    from promptgrad.events import event_from_json

    step = event_from_json(json.loads(STEP.replace("STEP", "3").replace("LOSS", "NaN")))
    assert step.loss != step.loss  # NaN: what the run recorded, not damage
    assert (
        event_from_json(json.loads(STEP.replace("STEP", "3").replace("LOSS", "7"))).loss == 7.0
    )  # an integer loss: a float
