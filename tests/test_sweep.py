"""`promptgrad sweep`: a grid of ordinary runs that finishes, survives a kill -9 and a SIGTERM without redoing
finished runs, runs through submitit's local executor, and refuses bad grids and changed sweeps in one line.

Sweeps run as subprocesses (`python -m promptgrad sweep`, whose runs are subprocesses too). To interrupt a
run mid-way, its steps are slowed down: a sitecustomize.py on the children's PYTHONPATH imports
tests/slow_entry.py (SLOW_STEP_SECONDS before each step) in every process the sweep starts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from promptgrad.cli.main import main

TESTS = Path(__file__).parent
TIMEOUT = 300  # seconds for a whole sweep: the runs are tiny, but the machine may be shared


def sweep_args(tiny_config, name: str, *extra: str, steps: int = 4) -> list[str]:
    # the tiny pairs are antonyms: that task's template and hand-written prompts, unless the grid gives tasks
    task = [] if any(a.startswith("task=") for a in extra) else ["--task", "antonyms"]
    return [
        "sweep",
        name,
        *task,
        "--model",
        tiny_config.problem.model,
        "--data",
        tiny_config.problem.data,
        "--steps",
        str(steps),
        "--batch-size",
        "4",
        "--eval-every",
        "0",
        "--eval-size",
        "4",
        "--checkpoint-every",
        "2",
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
        tiny_config.machine.runs_dir,
        *extra,
    ]


def sweep_env(tmp_path: Path, slow: float = 0.0) -> dict[str, str]:
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(
        "import os\nif os.environ.get('SLOW_STEP_SECONDS'):\n    import slow_entry  # noqa\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(hook), str(TESTS)])}
    if slow:
        env["SLOW_STEP_SECONDS"] = str(slow)
    return env


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """The sweep in a process group of its own, so a test can kill it and its runs together."""
    return subprocess.Popen(
        [sys.executable, "-m", "promptgrad", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=TIMEOUT)
    return process.returncode, out, err


def state(run: Path) -> str:
    from promptgrad.store.run_folder import summarize

    return summarize(run).state if (run / "config.toml").exists() else "none"


def logged(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def fingerprint(run: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of a run folder: its bytes and modification time (a rewrite with the same bytes shows too)."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(run.iterdir()) if p.is_file()}


def wait_until(condition, process: subprocess.Popen, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            raise AssertionError(f"the sweep ended before {what}: {process.communicate()}")
        time.sleep(0.05)
    raise AssertionError(f"not {what} within {timeout} s")


def steps_once(run: Path, steps: int) -> bool:
    events = logged(run)
    return [e["step"] for e in events if e["event"] == "step"] == list(range(1, steps + 1)) and events[-1][
        "event"
    ] == "finished"


# ---- the grid, in-process and fast --------------------------------------------------------------------


def test_each_point_is_named_from_its_values_and_checked_by_train_config(tiny_config, tmp_path, monkeypatch):
    from promptgrad.experiments.sweep import plan, run_name

    sweep = plan("s", tmp_path, {"task": ["capitals", "currencies"], "seed": ["0", "1"]}, {"steps": "5"})
    assert [p.name for p in sweep.points] == [
        "capitals-seed0",
        "capitals-seed1",
        "currencies-seed0",
        "currencies-seed1",
    ]
    assert sweep.points[1].settings == {"steps": 5, "task": "capitals", "seed": 1}  # typed as the run records them
    assert sweep.axes == {"task": ["capitals", "currencies"], "seed": [0, 1]}
    # the same value written two ways is one value; a relative path is made absolute
    with pytest.raises(Exception, match="same value twice"):
        plan("s", tmp_path, {"lr": ["0.01", "1e-2"]}, {})
    monkeypatch.chdir(Path(tiny_config.problem.data).parent)
    data = plan("s", tmp_path, {"data": ["pairs.jsonl"]}, {"task": "antonyms"}).points[0]
    assert data.settings["data"] == tiny_config.problem.data and data.name.startswith("pairs.jsonl-")
    assert run_name({"readable_only": False, "lr": 0.5}) == "readable_only_false-lr0.5"
    assert run_name({"init": "text: a b"}) != run_name({"init": "text:a b"})  # never two values, one name


def test_a_comma_inside_a_grid_value_is_written_backslash_comma(tmp_path):
    from promptgrad.experiments.sweep import parse_axis, plan

    assert parse_axis("seed=0,1") == ("seed", ["0", "1"])
    key, values = parse_axis(r"template=Here are two {prompt} {x}\, {y},{prompt} {x} = {y}")
    assert key == "template" and values == ["Here are two {prompt} {x}, {y}", "{prompt} {x} = {y}"]
    assert [p.settings["template"] for p in plan("s", tmp_path, {key: values}, {}).points] == values


@pytest.mark.parametrize(
    "grid, extra, message",
    [
        (["sed=0,1"], [], "--grid sed: no such setting"),
        (["seed=0,x"], [], "--grid seed=x: seed must be int"),
        (["lr=0.01,-1"], [], "--grid lr=-1: lr must be a number above 0"),
        (["task=capitals,nope"], [], "--grid task=nope: there is no bundled task"),
        (["baseline_text=a,b"], [], "holds a list of texts, which a grid cannot vary"),
        (["name=a,b"], [], "name cannot be gridded"),
        (["seed"], [], "is not KEY=VALUE"),
        (["seed=0", "seed=1"], [], "--grid seed is given twice"),
        ([], [], "give at least one --grid"),
        (["seed=0,1"], ["--name", "x"], "--name is not a setting of a sweep"),
        (["seed=0,1"], ["--prompt-len", "0"], "prompt_len must be at least 1"),
        (["seed=0,1"], ["--jobs", "0"], "--jobs must be at least 1"),
        (["data=a.jsonl,b.jsonl"], [], "data is both gridded and given as --data"),
    ],
)
def test_a_bad_grid_is_one_line_exit_2_and_writes_nothing(tiny_config, capsys, grid, extra, message):
    code = main(sweep_args(tiny_config, "bad", *[a for g in grid for a in ("--grid", g)], *extra))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0] and err[0].startswith("promptgrad: error: "), (code, err)
    assert not (Path(tiny_config.machine.runs_dir) / "bad").exists()


def test_a_changed_sweep_is_refused_in_one_line(tiny_config, capsys):
    from promptgrad.experiments.sweep import open_sweep

    sweep = open_sweep("s", tiny_config.machine.runs_dir, ["seed=0,1"], {"steps": 4}, resume=False)
    spec = (sweep.folder / "sweep.toml").read_bytes()
    for grid, extra, message in [
        (["seed=0,1,2"], [], "its grid is --grid seed=0,1, this command's --grid seed=0,1,2"),
        (["seed=0,1"], ["--lr", "0.1"], "it has no --lr, this command --lr 0.1"),
        (["seed=0,1"], ["--resume"], "--resume goes on with the grid and settings"),
    ]:
        code = main(
            [
                "sweep",
                "s",
                "--runs-dir",
                tiny_config.machine.runs_dir,
                "--steps",
                "4",
                *[a for g in grid for a in ("--grid", g)],
                *extra,
            ]
        )
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and message in err[0], (code, err)
        if not extra or extra[0] != "--resume":
            assert "promptgrad sweep s --resume" in err[0]
    assert (sweep.folder / "sweep.toml").read_bytes() == spec
    assert [p.name for p in sweep.folder.iterdir()] == ["sweep.toml"]  # refused before anything ran


def test_a_missing_submitit_is_one_line(tiny_config, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit then fails
    code = main(sweep_args(tiny_config, "s", "--grid", "seed=0,1", "--engine", "submitit"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["promptgrad: error: --engine submitit needs submitit: pip install 'promptgrad[slurm]'"]
    assert not (Path(tiny_config.machine.runs_dir) / "s").exists()


def test_the_pool_gives_each_gpu_one_run_or_splits_the_cores(tiny_config, tmp_path):
    from promptgrad.experiments.sweep import plan
    from promptgrad.experiments.sweep_pool import local_slots

    auto, cpu = (plan("s", tmp_path, {"seed": ["0", "1"]}, fixed) for fixed in ({}, {"device": "cpu"}))
    slots, _ = local_slots(auto, None, ["0", "1"], 16)
    assert [s.env for s in slots] == [{"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"}]
    assert [s.env for s in local_slots(auto, 1, ["3", "5"], 16)[0]] == [{"CUDA_VISIBLE_DEVICES": "3"}]
    assert len(local_slots(auto, 4, ["0", "1"], 16)[0]) == 2  # never two runs on one GPU
    split = plan("s", tmp_path, {"seed": ["0", "1"]}, {"device_map": "auto"})
    assert [s.env for s in local_slots(split, None, ["0", "1"], 16)[0]] == [{"CUDA_VISIBLE_DEVICES": "0,1"}]
    assert [(s.threads, s.env) for s in local_slots(cpu, None, ["0"], 16)[0]] == [(0, {})]  # a CPU sweep: in turn
    assert [s.threads for s in local_slots(cpu, 4, [], 16)[0]] == [4, 4, 4, 4]
    assert [s.threads for s in local_slots(auto, 3, [], 2)[0]] == [1, 1, 1]
    threads = plan("s", tmp_path, {"seed": ["0", "1"]}, {"threads": "2"})
    assert [s.threads for s in local_slots(threads, 2, [], 16)[0]] == [0, 0]  # the runs' own setting stands


# ---- whole sweeps, as subprocesses ---------------------------------------------------------------------


def test_a_sweep_finishes_as_ordinary_runs_and_a_second_time_redoes_nothing(tiny_config, tmp_path, capsys):
    args = sweep_args(tiny_config, "grid", "--grid", "seed=0,1", "--jobs", "2")
    code, out, err = finish(start(args, sweep_env(tmp_path)))
    assert code == 0, (out, err)
    folder = Path(tiny_config.machine.runs_dir) / "grid"
    runs = [folder / "seed0", folder / "seed1"]
    assert all(state(run) == "finished" for run in runs), out
    assert "run 1/2 seed0: started" in out and "run 2/2 seed1: finished" in out and "2 of 2 runs finished" in out
    assert (folder / "logs" / "seed1.log").read_text().count("finished at step 4") == 1
    assert {p.name for p in runs[0].iterdir()} <= {
        "config.toml",
        "facts.json",
        "split.jsonl",
        "metrics.jsonl",
        "checkpoint.pt",
        "prompt.safetensors",
        ".lock",
        "pair_scores.jsonl",
    }  # no log inside
    assert main(["eval", str(runs[1])]) == 0 and "learned" in capsys.readouterr().out
    # the run browser's list (run_folder.list_runs) finds a sweep's runs under their sweep's name; a link
    # to a sweep folder is not entered
    from promptgrad.store.run_folder import list_runs

    (folder.parent / "linked").symlink_to(folder, target_is_directory=True)
    listed = {r.name: r.state for r in list_runs(folder.parent)}
    assert listed == {"grid/seed0": "finished", "grid/seed1": "finished"}, listed
    before = [fingerprint(run) for run in runs]
    code, out, err = finish(start(args, sweep_env(tmp_path)))
    assert code == 0 and "2 finished before, 0 to resume, 0 to start" in out and "started" not in out, (out, err)
    assert [fingerprint(run) for run in runs] == before


def test_a_crashed_run_is_that_runs_failure_and_the_sweep_goes_on(tiny_config, tmp_path):
    missing = str(Path(tiny_config.problem.data).with_name("missing.jsonl"))
    args = sweep_args(tiny_config, "crash", "--grid", f"data={tiny_config.problem.data},{missing}", steps=2)
    args[args.index("--data") : args.index("--data") + 2] = []  # the grid gives it
    code, out, err = finish(start(args, sweep_env(tmp_path)))
    assert code == 1, (out, err)
    assert (
        "1 of 2 runs finished; 1 not:" in out and "failed (exit status 2): data file" in out and "does not exist" in out
    ), out
    assert "go on with: promptgrad sweep crash --resume --runs-dir" in out


def test_a_sweep_killed_with_sigkill_goes_on_without_redoing_finished_runs(tiny_config, tmp_path):
    steps = 10
    args = sweep_args(tiny_config, "killed", "--grid", "seed=0,1", steps=steps)
    process = start(args, sweep_env(tmp_path, slow=0.15))
    first, second = (Path(tiny_config.machine.runs_dir) / "killed" / f"seed{i}" for i in (0, 1))
    wait_until(
        lambda: state(first) == "finished" and (second / "checkpoint.pt").exists(),
        process,
        "the first run finished and the second checkpointed",
    )
    os.killpg(process.pid, signal.SIGKILL)  # the sweep and its run, at once
    process.communicate(timeout=60)
    assert state(second) != "finished"
    kept = fingerprint(first)
    code, out, err = finish(start(args, sweep_env(tmp_path)))
    assert code == 0, (out, err)
    assert "1 finished before, 1 to resume, 0 to start" in out and "run 2/2 seed1: resumed" in out, out
    assert fingerprint(first) == kept  # never opened for writing: bytes and times as they were
    assert [state(run) for run in (first, second)] == ["finished", "finished"]
    assert steps_once(second, steps)  # resumed from its checkpoint: every step once, then the end
    assert any(e["event"] == "started" and e["start_step"] > 0 for e in logged(second))


def test_sigterm_stops_the_running_run_with_a_checkpoint_and_resume_finishes(tiny_config, tmp_path):
    steps = 10
    args = sweep_args(tiny_config, "stopped", "--grid", "seed=0,1", steps=steps)
    process = start(args, sweep_env(tmp_path, slow=0.15))
    first = Path(tiny_config.machine.runs_dir) / "stopped" / "seed0"
    wait_until(
        lambda: (first / "metrics.jsonl").exists() and any(e["event"] == "step" for e in logged(first)),
        process,
        "the first run took a step",
    )
    process.send_signal(signal.SIGTERM)  # the sweep alone: it passes the stop on
    code, out, err = finish(process)
    assert code == 130, (out, err)
    assert "SIGTERM: stopping the running runs" in out and "go on with: promptgrad sweep stopped --resume" in out, out
    assert state(first) == "stopped" and (first / "checkpoint.pt").exists()
    assert not (first.parent / "seed1").exists()  # nothing new started after the signal
    code, out, err = finish(
        start(["sweep", "stopped", "--resume", "--runs-dir", tiny_config.machine.runs_dir], sweep_env(tmp_path))
    )
    assert code == 0 and "1 to resume, 1 to start" in out, (out, err)
    assert steps_once(first, steps) and state(first.parent / "seed1") == "finished"


def test_the_submitit_engine_runs_the_same_sweep_as_local_jobs(tiny_config, tmp_path):
    pytest.importorskip("submitit")
    args = sweep_args(
        tiny_config, "engine", "--grid", "seed=0,1", "--engine", "submitit", "--engine-cluster", "local", steps=2
    )
    code, out, err = finish(start(args, sweep_env(tmp_path)))
    assert code == 0, (out, err)
    folder = Path(tiny_config.machine.runs_dir) / "engine"
    assert "submitit (local)" in out and "run 2/2 seed1: submitted as job" in out and "2 of 2 runs finished" in out, out
    assert [state(folder / f"seed{i}") for i in (0, 1)] == ["finished", "finished"]
    assert any((folder / "submitit").iterdir())  # submitit's own files, beside the runs
    before = fingerprint(folder / "seed0")
    code, out, err = finish(start(args, sweep_env(tmp_path)))
    assert code == 0 and "submitted" not in out and "2 finished before" in out, (out, err)
    assert fingerprint(folder / "seed0") == before


def test_a_job_told_to_checkpoint_stops_its_run_and_its_requeued_copy_resumes_it(tiny_config, tmp_path, monkeypatch):
    """What submitit does before a Slurm time limit: call the job's __submitit_checkpoint__, pickle what it
    returns and run that as the requeued job. Here the same calls, in this process."""
    pytest.importorskip("submitit")
    import threading

    import cloudpickle

    from promptgrad.experiments.sweep import plan
    from promptgrad.experiments.sweep_engine import SweepJob

    for key, value in sweep_env(tmp_path, slow=0.15).items():
        monkeypatch.setenv(key, value)  # the job's run inherits them: slowed down, one thread
    steps = 10
    sweep = plan(
        "requeue",
        tiny_config.machine.runs_dir,
        {"seed": [0]},
        {
            "task": "antonyms",
            "model": tiny_config.problem.model,
            "data": tiny_config.problem.data,
            "steps": steps,
            "batch_size": 4,
            "eval_every": 0,
            "eval_size": 4,
            "checkpoint_every": 100,
            "precision": "fp32",
            "device": "cpu",
        },
    )
    sweep.folder.mkdir(parents=True)
    job, outcome = SweepJob(sweep, sweep.points[0]), {}
    running = threading.Thread(target=lambda: outcome.update(first=job()))
    running.start()
    run = sweep.folder / "seed0"
    deadline = time.monotonic() + TIMEOUT
    while not ((run / "metrics.jsonl").exists() and any(e["event"] == "step" for e in logged(run))):
        assert running.is_alive() and time.monotonic() < deadline, outcome
        time.sleep(0.05)
    requeued = cloudpickle.loads(cloudpickle.dumps(job.__submitit_checkpoint__()))  # stops the run: a checkpoint
    running.join(TIMEOUT)
    assert outcome["first"].state == "stopped" and state(run) == "stopped", outcome
    assert requeued.function().state == "finished"  # the requeued job resumes the run
    assert steps_once(run, steps)
