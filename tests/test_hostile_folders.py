"""Folders planted against their user: a link put in place of a folder promptgrad writes into or cleans
(a sweep's run folder or logs/, a run folder, a report's --out or plots/, an export's path, the trackers'
folder inside a run folder) is refused in one line, exit status 2, and nothing outside the folders the
user named changes: every file there keeps its bytes and its modification time (issue 27's probe)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from helpers import one_line_error

from promptgrad.cli.main import main
from promptgrad.config import TrainConfig
from promptgrad.errors import UserError
from promptgrad.experiments.sweep import Action, next_action, open_sweep
from promptgrad.readout.explain import PromptReading
from promptgrad.train.loop import train

VICTIM = b"a file of the user's, outside every folder promptgrad was given\n" * 50


def snapshot(folder: Path) -> dict[str, tuple[str, bytes, int]]:
    """Everything under `folder` (links not followed): each entry's kind, bytes (a link: its target) and mtime."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            info = os.lstat(path)
            if path.is_symlink():
                found[str(path)] = ("link", os.readlink(path).encode(), info.st_mtime_ns)
            elif path.is_dir():
                found[str(path)] = ("folder", b"", info.st_mtime_ns)
            else:
                found[str(path)] = ("file", path.read_bytes(), info.st_mtime_ns)
    return found


def plant_victims(folder: Path, *names: str) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(VICTIM)
    return snapshot(folder)


def tiny_sweep(tiny_config, name: str = "s"):
    """A sweep of one run (seed0) planned and recorded (sweep.toml), none of its runs started."""
    fixed = {
        "task": "antonyms",
        "model": tiny_config.problem.model,
        "data": tiny_config.problem.data,
        "steps": 2,
        "batch_size": 4,
        "eval_every": 0,
        "eval_size": 4,
        "checkpoint_every": 2,
        "num_predictions": 1,
        "nearest_k": 1,
        "precision": "fp32",
        "device": "cpu",
        "threads": 1,
    }
    return open_sweep(name, tiny_config.machine.runs_dir, ["seed=0"], fixed, resume=False)


def resume_sweep(tiny_config, name: str = "s") -> list[str]:
    return ["sweep", name, "--resume", "--runs-dir", tiny_config.machine.runs_dir]


# ---- sweeps ---------------------------------------------------------------------------------------------


def test_a_run_folder_of_a_sweep_replaced_by_a_link_is_refused_not_resumed_there(
    tiny_config, stopped_run, tmp_path, capsys
):
    """The probe: a sweep's run folder replaced by a link to a run elsewhere; sweep --resume wrote that run."""
    sweep = tiny_sweep(tiny_config)
    elsewhere = tmp_path / "elsewhere" / "stopped"
    elsewhere.parent.mkdir()
    shutil.move(stopped_run, elsewhere)
    (sweep.folder / "seed0").symlink_to(elsewhere, target_is_directory=True)
    before = snapshot(elsewhere.parent)
    line = one_line_error(capsys, main(resume_sweep(tiny_config)), "symbolic link")
    assert str(sweep.folder / "seed0") in line
    assert snapshot(elsewhere.parent) == before
    assert not (sweep.folder / "logs").exists()  # refused before any run started


def test_a_sweeps_logs_folder_replaced_by_a_link_is_refused(tiny_config, tmp_path, capsys):
    sweep = tiny_sweep(tiny_config)
    before = plant_victims(tmp_path / "elsewhere", "seed0.log", "notes.txt")
    (sweep.folder / "logs").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    line = one_line_error(capsys, main(resume_sweep(tiny_config)), "symbolic link")
    assert "logs" in line
    assert snapshot(tmp_path / "elsewhere") == before
    assert not (sweep.folder / "seed0").exists()  # no run started


def run_folder_without_checkpoint(tiny_config, folder: Path) -> dict:
    """A run folder as a run that failed before its first checkpoint leaves it (a restart clears it), with
    every promptgrad-named file holding the user's bytes."""
    plant_victims(
        folder, "metrics.jsonl", "facts.json", "split.jsonl", "traceback.txt", "prompt.safetensors", "mine.txt"
    )
    tiny_config.save(folder / "config.toml")
    return snapshot(folder)


def test_a_restarts_clean_up_never_deletes_through_a_linked_run_folder(tiny_config, tmp_path, capsys):
    from promptgrad.experiments.sweep_pool import launch

    sweep = tiny_sweep(tiny_config)
    elsewhere = tmp_path / "elsewhere"
    before = run_folder_without_checkpoint(tiny_config, elsewhere)
    (sweep.folder / "seed0").symlink_to(elsewhere, target_is_directory=True)
    one_line_error(capsys, main(resume_sweep(tiny_config)), "symbolic link")
    assert snapshot(elsewhere) == before
    # the same when the link appears after the sweep looked (or a submitit job decides later): the run's
    # next step is refused, and the clean-up never reaches the folder elsewhere
    assert next_action(sweep.folder / "seed0").kind == "refused"
    try:
        launched = launch(sweep, sweep.points[0], Action("start", "empty with no checkpoint"))
    except UserError as e:
        assert "symbolic link" in str(e) and "\n" not in str(e)
    else:
        launched.process.kill()
        launched.process.wait()
        pytest.fail("a run was started through a link in its folder's place")
    assert snapshot(elsewhere) == before


def test_the_clean_up_removes_only_promptgrads_files_of_the_run_folder_itself(tiny_config):
    """Still true of a real run folder: promptgrad's own files go, the user's stay."""
    from promptgrad.experiments.sweep import clear_for_restart

    sweep = tiny_sweep(tiny_config)
    run = sweep.folder / "seed0"
    run_folder_without_checkpoint(tiny_config, run)
    clear_for_restart(run)
    assert sorted(p.name for p in run.iterdir()) == [".lock", "mine.txt"] and (run / "mine.txt").read_bytes() == VICTIM


# ---- a run folder ------------------------------------------------------------------------------------------


def test_a_run_folder_name_planted_as_a_link_is_refused(tiny_config, tmp_path, capsys):
    """runs/NAME is a link to a folder elsewhere: train --name NAME would have written the run there."""
    before = plant_victims(tmp_path / "elsewhere", "notes.txt")
    runs = Path(tiny_config.machine.runs_dir)
    runs.mkdir(parents=True)
    (runs / "planted").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    config = tmp_path / "run.toml"
    tiny_config.replace(name="planted").save(config)
    one_line_error(capsys, main(["train", "--config", str(config)]), "symbolic link")
    assert snapshot(tmp_path / "elsewhere") == before


def test_a_resume_through_a_link_in_the_run_folders_place_is_refused(stopped_run, tmp_path, capsys):
    link = tmp_path / "latest"
    link.symlink_to(stopped_run, target_is_directory=True)
    before = snapshot(stopped_run)
    line = one_line_error(capsys, main(["train", "--resume", str(link)]), "symbolic link")
    assert str(link) in line
    assert snapshot(stopped_run) == before


# ---- reports ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tiny_gpt2, tmp_path_factory) -> Path:
    """One finished tiny run whose template starts with {prompt} (so it exports, too)."""
    root = tmp_path_factory.mktemp("hostile")
    data = root / "pairs.jsonl"
    from helpers import TINY_PAIRS

    data.write_text("".join(json.dumps({"x": x, "y": y}) + "\n" for x, y in TINY_PAIRS))
    config = TrainConfig(
        task="antonyms",
        model=tiny_gpt2,
        data=str(data),
        template="{prompt} {x} and {y}",
        steps=2,
        batch_size=4,
        eval_every=2,
        eval_size=0,
        checkpoint_every=0,
        num_predictions=0,
        nearest_k=0,
        lr=1e-2,
        precision="fp32",
        device="cpu",
        name="done",
        runs_dir=str(root / "runs"),
    )
    with pytest.MonkeyPatch.context() as patch:  # the model's own reading of the prompt: seconds nobody reads here
        patch.setattr(
            "promptgrad.train.loop.read_prompt", lambda frozen, vectors: PromptReading([""] * len(vectors), "")
        )
        events = list(train(config))
    assert events[-1].kind == "finished", events[-1]
    return root / "runs" / "done"


def test_a_reports_plots_folder_linked_elsewhere_is_refused(finished, tmp_path, capsys):
    """The probe: OUT/plots a link to a folder elsewhere; the old compare-*.svg and loss-*.svg there were
    deleted and new ones written."""
    before = plant_victims(
        tmp_path / "elsewhere", "compare-old.svg", "loss-old.svg", "compare-pairs.svg", "loss-pairs.svg"
    )
    out = tmp_path / "out"
    out.mkdir()
    (out / "plots").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    one_line_error(capsys, main(["report", str(finished), "--out", str(out)]), "symbolic link")
    assert snapshot(tmp_path / "elsewhere") == before
    assert sorted(p.name for p in out.iterdir()) == ["plots"]


def test_a_report_out_that_is_a_link_is_refused(finished, tmp_path, capsys):
    before = plant_victims(tmp_path / "elsewhere", "report.md", "notes.txt")
    (tmp_path / "out").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    one_line_error(capsys, main(["report", str(finished), "--out", str(tmp_path / "out")]), "symbolic link")
    assert snapshot(tmp_path / "elsewhere") == before


def test_a_report_replaces_its_own_earlier_report_saying_so_and_never_anyone_elses(finished, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["report", str(finished), "--out", str(out)]) == 0
    assert "replaced" not in capsys.readouterr().out
    # an earlier report's plot of a task no longer reported goes; a link among the plots is left alone, and
    # so is the file it points to
    (out / "plots" / "compare-gone.svg").write_bytes(b"<svg/>")
    before = plant_victims(tmp_path / "elsewhere", "loss-kept.svg")
    (out / "plots" / "loss-kept.svg").symlink_to(tmp_path / "elsewhere" / "loss-kept.svg")
    assert main(["report", str(finished), "--out", str(out)]) == 0
    assert f"replaced the earlier report in {out}" in capsys.readouterr().out.replace("\n", "")
    assert not (out / "plots" / "compare-gone.svg").exists() and (out / "plots" / "loss-kept.svg").is_symlink()
    assert snapshot(tmp_path / "elsewhere") == before
    # a folder holding someone else's report.md (their notes) is refused, never overwritten
    notes = tmp_path / "notes"
    kept = plant_victims(notes, "report.md")
    one_line_error(capsys, main(["report", str(finished), "--out", str(notes)]), "promptgrad did not write")
    assert snapshot(notes) == kept


def test_a_report_is_never_written_into_a_run_folder(finished, tmp_path, capsys):
    before = snapshot(finished)
    for out in (finished, finished / "report"):
        one_line_error(capsys, main(["report", str(finished), "--out", str(out)]), "run folder")
    assert snapshot(finished) == before


# ---- exports ------------------------------------------------------------------------------------------------


def test_an_export_never_follows_a_link_planted_in_the_path_it_makes(finished, tmp_path, monkeypatch, capsys):
    """--out base/made/adapter, base/made not there yet: a link planted there while the model loads (the
    slow part) was followed, and the adapter written into the folder it points to."""
    import promptgrad.integrations.export

    base, elsewhere = tmp_path / "base", tmp_path / "elsewhere"
    base.mkdir()
    before = plant_victims(elsewhere, "notes.txt")
    load_model = promptgrad.integrations.export.load_model

    def load_and_plant(*args, **kwargs):
        (base / "made").symlink_to(elsewhere, target_is_directory=True)
        return load_model(*args, **kwargs)

    monkeypatch.setattr(promptgrad.integrations.export, "load_model", load_and_plant)
    line = one_line_error(
        capsys, main(["export", str(finished), "--out", str(base / "made" / "adapter")]), "symbolic link"
    )
    assert str(base / "made") in line
    assert snapshot(elsewhere) == before
    assert [p.name for p in base.iterdir()] == ["made"]  # no temporary folder left either


def test_an_export_makes_missing_folders_and_writes_the_adapter(finished, tmp_path):
    from promptgrad.integrations.export import export_peft

    out = export_peft(finished, tmp_path / "new" / "deeper" / "adapter")
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert [p.name for p in out.parent.iterdir()] == ["adapter"]


# ---- trackers -----------------------------------------------------------------------------------------------


def test_the_trackers_folder_is_never_inside_a_run_folder(finished, tiny_config, tmp_path, capsys):
    """The README says the trackers' files never go into a run folder; --tracker-dir RUN/tracking put them there."""
    pytest.importorskip("torch.utils.tensorboard")
    before = snapshot(finished)
    config = tmp_path / "run.toml"
    tiny_config.replace(name="new", report_to=["tensorboard"], tracker_dir=str(finished / "tracking")).save(config)
    one_line_error(capsys, main(["train", "--config", str(config)]), "inside the run folder")
    assert snapshot(finished) == before
    # the run folder about to be made counts too
    runs = Path(tiny_config.machine.runs_dir)
    tiny_config.replace(name="new", report_to=["tensorboard"], tracker_dir=str(runs / "new" / "tb")).save(config)
    one_line_error(capsys, main(["train", "--config", str(config)]), "inside the run folder")
    assert not (runs / "new").exists()


def test_a_trackers_folder_planted_as_a_link_is_refused_before_the_run_starts(tiny_config, tmp_path, capsys):
    pytest.importorskip("torch.utils.tensorboard")
    before = plant_victims(tmp_path / "elsewhere", "events.out.tfevents.1")
    (tmp_path / "tracking").mkdir()
    (tmp_path / "tracking" / "tensorboard").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    config = tmp_path / "run.toml"
    tiny_config.replace(report_to=["tensorboard"], tracker_dir=str(tmp_path / "tracking")).save(config)
    one_line_error(capsys, main(["train", "--config", str(config)]), "symbolic link")
    assert snapshot(tmp_path / "elsewhere") == before
    assert not Path(tiny_config.machine.runs_dir).exists()  # refused before the run folder was made
