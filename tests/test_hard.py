"""Hard-prompt search on the small GPT-2: projection, filters, the GCG guarantee, PEZ and GCG progress,
and what a hard run leaves in its folder and shows in `promptgrad eval`."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

import pytest
import torch
from helpers import logged
from safetensors import safe_open

from promptgrad.cli.main import main
from promptgrad.config import GCGSettings, TrainConfig
from promptgrad.errors import UserError
from promptgrad.events import Evaluation, Finished, HardPromptFound, Started, Step, event_from_json
from promptgrad.learners.search.gcg import GCG
from promptgrad.learners.search.hard_learner import HardLearner, start_ids
from promptgrad.learners.search.pez import PEZ
from promptgrad.learners.search.projection import Projection, RoundTrip, allowed_tokens, token_texts
from promptgrad.learners.search.relax import Relaxation
from promptgrad.model.objective import target_loss
from promptgrad.model.template import PROMPT_PLACEHOLDER, Batch
from promptgrad.store.run_folder import RunFolder
from promptgrad.train.loop import train as search
from promptgrad.train.session import Session, open_session


@dataclass
class Setup:
    session: Session
    allowed: torch.Tensor
    projection: Projection
    round_trip: RoundTrip
    ids: list[int]
    vectors: torch.Tensor
    batch: Batch  # one fixed batch of training pairs

    def loss(self, ids: list[int]) -> float:
        with torch.no_grad():
            return target_loss(self.session.frozen, self.batch, self.projection.rows(ids)).item()

    def token(self, text: str) -> int:
        (token_id,) = self.session.frozen.tokenizer(text, add_special_tokens=False)["input_ids"]
        return token_id


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model's matrices are too small to share among threads; on a busy machine (CI, other
    jobs) the threads mostly wait for each other, so these tests run several times faster on one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def setup(tiny_gpt2, tmp_path_factory) -> Setup:
    from helpers import TINY_PAIRS

    data = tmp_path_factory.mktemp("hard-data") / "pairs.jsonl"
    data.write_text("".join(json.dumps({"x": x, "y": y}) + "\n" for x, y in TINY_PAIRS))
    session = open_session(
        TrainConfig(task="antonyms", model=tiny_gpt2, data=str(data), precision="fp32", device="cpu", mode="hard")
    )
    frozen, encoder = session.frozen, session.encoder
    allowed = allowed_tokens(frozen.tokenizer, frozen.embedding.weight.shape[0], readable_only=True)
    projection = Projection(frozen.embedding.weight, allowed)
    round_trip = RoundTrip(encoder, [p.x for p in session.split.train[:3]])
    vectors, ids = start_ids(
        session.config.problem.init, encoder, frozen, projection, allowed, round_trip, torch.Generator().manual_seed(0)
    )
    batch = encoder.collate([encoder.encode(p.x, p.y) for p in session.split.train[:4]])
    return Setup(session, allowed, projection, round_trip, ids, vectors, batch)


# ---- projection and filters ---------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_projection_returns_exact_vocabulary_rows(setup, metric):
    table = setup.session.frozen.embedding.weight
    projection = Projection(table, setup.allowed, metric)
    vectors = torch.randn(6, table.shape[1], generator=torch.Generator().manual_seed(1)) * table.std()
    ids = projection.ids(vectors)
    assert setup.allowed[ids].all()
    assert torch.equal(projection.rows(ids), table[ids].float())
    # a token's own row projects to that token
    own = [setup.token(" cold"), setup.token(" hot"), setup.token("Here")]
    assert projection.ids(table[own]).tolist() == own
    # and it is the nearest allowed row: no other allowed row is closer
    keys = table.float()[setup.allowed]
    if metric == "cosine":
        best = torch.nn.functional.cosine_similarity(vectors[:, None], keys[None], dim=-1).max(-1).values
        chosen = torch.nn.functional.cosine_similarity(vectors, table[ids].float(), dim=-1)
        torch.testing.assert_close(chosen, best)
    else:
        torch.testing.assert_close(
            torch.cdist(vectors, table[ids].float()).diagonal(), torch.cdist(vectors, keys).min(-1).values
        )


def test_readable_filter_keeps_printable_ascii_only(setup):
    tokenizer = setup.session.frozen.tokenizer
    allowed_ids = setup.allowed.nonzero().flatten().tolist()
    assert all(all(" " <= c <= "~" for c in text) and text for text in token_texts(tokenizer, allowed_ids))
    assert not setup.allowed[setup.token("\n")] and not setup.allowed[tokenizer.eos_token_id]
    assert not setup.allowed[setup.token(" é")]  # not ASCII
    assert setup.allowed[setup.token(" cold")]
    everything = allowed_tokens(tokenizer, len(setup.allowed), readable_only=False)
    assert everything[setup.token(" é")] and not everything[tokenizer.eos_token_id]


def test_round_trip_rejects_a_token_pair_that_merges(setup):
    h, ot, hot, cold = setup.token(" h"), setup.token("ot"), setup.token(" hot"), setup.token(" cold")
    # " h" + "ot" decodes to " hot", which encodes as the single token " hot": not the searched ids
    assert setup.session.frozen.tokenizer(" hot", add_special_tokens=False)["input_ids"] == [hot]
    ok = setup.round_trip([[h, ot, cold, cold], [hot, cold, hot, cold], [cold, hot, h, ot]]).tolist()
    assert ok == [False, True, False]
    # one that glues onto the template's text before it fails as well: "Here are two" + "s" -> " tw", "os"
    assert not setup.round_trip([[setup.token("s"), cold, cold, cold]])[0]


# ---- the methods ------------------------------------------------------------------------------


@pytest.mark.parametrize("rescore", [0, 4])
def test_a_gcg_step_never_increases_the_batch_loss_of_the_kept_prompt(setup, rescore):
    """Also when candidates are screened on part of the batch and only the best few re-scored on all of it."""
    gcg = GCG(
        setup.session.frozen,
        setup.projection,
        setup.allowed,
        setup.round_trip,
        setup.ids,
        GCGSettings(topk=16, candidates=24, rescore=rescore),
        torch.Generator().manual_seed(0),
    )
    for _ in range(3):
        before = list(gcg.ids)
        step = gcg.search_step(setup.batch)
        assert step.loss <= step.previous_loss
        assert setup.loss(step.ids) <= setup.loss(before) + 1e-5
        assert sum(a != b for a, b in zip(before, step.ids)) <= 1  # one swap at most
        assert setup.round_trip([step.ids])[0] and setup.allowed[step.ids].all()
        assert step.n_candidates == 4 if rescore else step.n_candidates > 4


def test_pez_and_gcg_lower_the_loss_from_their_start(setup):
    start = setup.loss(setup.ids)
    gcg = GCG(
        setup.session.frozen,
        setup.projection,
        setup.allowed,
        setup.round_trip,
        setup.ids,
        GCGSettings(topk=16, candidates=24),
        torch.Generator().manual_seed(0),
    )
    for _ in range(3):
        gcg.step(setup.batch, lr=0.0)
    assert setup.loss(gcg.ids) < start

    pez = PEZ(setup.session.frozen, setup.projection, setup.vectors, lr=0.1)
    assert pez.ids == setup.ids  # it starts from the same tokens
    seen = []
    for _ in range(8):
        seen.append(pez.step(setup.batch, lr=0.1))  # the loss of the projected (real-token) prompt
        seen.append(setup.loss(pez.ids))
    assert seen[0] == pytest.approx(start)
    assert min(seen) < start
    assert not torch.equal(pez.shadow.vectors.detach(), setup.vectors)


def test_relax_starts_saturated_and_its_argmax_stays_put(setup):
    relax = Relaxation(setup.session.frozen, setup.projection, setup.allowed, setup.ids, lr=0.03)
    losses = [relax.step(setup.batch, lr=0.03) for _ in range(3)]
    assert relax.ids == setup.ids  # the original's failure: near one-hot logits, vanishing gradients
    assert losses[0] == pytest.approx(setup.loss(setup.ids))


# ---- the search loop and the run folder -------------------------------------------------------


def hard_config(tiny_config, **changes) -> TrainConfig:
    settings = dict(
        mode="hard",
        method="gcg",
        steps=3,
        search_batch_size=4,
        topk=16,
        candidates=16,
        eval_every=2,
        checkpoint_every=2,
    )
    return tiny_config.replace(**{**settings, **changes})


def test_a_hard_run_reports_its_prompt_and_saves_ids_and_text(setup, tiny_config, capsys):
    events = logged(search(hard_config(tiny_config, name="gcg")))
    assert isinstance(events[0], Started) and isinstance(events[-1], Finished) and not events[-1].stopped
    assert [e.step for e in events if isinstance(e, Step)] == [1, 2, 3]
    assert {e.prompt for e in events if isinstance(e, Evaluation)} == {"hand-written", "k-shot", "untrained", "learned"}
    found = [e for e in events if isinstance(e, HardPromptFound)]
    assert found[0].step == 0 and all(a.train_loss > b.train_loss for a, b in zip(found, found[1:]))
    best = found[-1]
    assert "".join(best.tokens) == best.text and len(best.ids) == 4

    run = RunFolder.open(events[0].run_dir)
    assert run.events() == events
    assert event_from_json(json.loads(json.dumps(best.to_json()))) == best
    with safe_open(str(run.path / "prompt.safetensors"), "pt") as f:
        meta, tensor = f.metadata(), f.get_tensor("prompt")
    assert json.loads(meta["hard_prompt_ids"]) == best.ids and meta["hard_prompt_text"] == best.text
    assert meta["mode"] == "hard" and meta["method"] == "gcg"
    table = setup.session.frozen.embedding.weight  # the same tiny model
    assert tensor.dtype == torch.float32 and torch.equal(tensor, table[best.ids].float())

    capsys.readouterr()
    assert main(["eval", str(run.path)]) == 0
    out = capsys.readouterr().out
    assert "hard (gcg)" in out and repr(best.text) in out and "hand-written" in out
    assert f"{events[-1].test_loss:.4f}" in out  # the same test pairs, the same score


@torch.no_grad()
def plain_held_out_loss(learner: HardLearner, ids: list[int]) -> float:
    """Mean cross-entropy per target token of the prompt `ids` on the learner's held-out pairs, from plain
    unpadded forward passes of each pair's tokens."""
    total, count = 0.0, 0
    for pair in learner.holdout:
        encoded = learner.encoder.encode(pair.x, pair.y)
        slots = iter(ids)
        sequence = [next(slots) if t == PROMPT_PLACEHOLDER else t for t in encoded.context] + encoded.target
        logits = learner.frozen.model(input_ids=torch.tensor([sequence])).logits[0]
        n = len(encoded.target)
        total += torch.nn.functional.cross_entropy(
            logits[-n - 1 : -1], torch.tensor(encoded.target), reduction="sum"
        ).item()
        count += n
    return total / count


@pytest.mark.parametrize("method", ["pez", "relax"])
def test_pez_and_relax_runs_announce_and_save_each_new_best_on_the_held_out_pairs(tiny_config, method, monkeypatch):
    """The start and every step's new proposal that survives the round trip are judged by their held-out loss
    (recomputed here); the HardPromptFound events are exactly the successive bests, at their steps, and the
    saved prompt is the last. With these settings PEZ finds a better prompt than its start, so a run that
    ignored its proposals, or saved the start, fails; relax's argmax never leaves the start (relax.py)."""
    learners, proposals = [], []
    original_init, original_step = HardLearner.__init__, HardLearner.step

    def recording_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        learners.append(self)
        proposals.append((0, list(self.method.ids)))

    def recording_step(self, batch, lr, step):
        out = original_step(self, batch, lr, step)
        proposals.append((step, list(self.method.ids)))  # what the learner judges after this step
        return out

    monkeypatch.setattr(HardLearner, "__init__", recording_init)
    monkeypatch.setattr(HardLearner, "step", recording_step)
    events = logged(search(hard_config(tiny_config, name=method, method=method, steps=4, lr=0.05)))
    assert isinstance(events[-1], Finished) and not events[-1].stopped, events[-1]
    (learner,) = learners
    assert not any(learner.encoder.encode(p.x, p.y) in learner.pairs for p in learner.holdout)  # held out of the search
    assert [s for s, _ in proposals] == [0, 1, 2, 3, 4]

    bests, best, judged = [], float("inf"), set()
    for step, ids in proposals:
        if tuple(ids) in judged or not learner.round_trip([ids])[0]:
            continue
        judged.add(tuple(ids))
        loss = plain_held_out_loss(learner, ids)
        if loss < best:
            bests.append((step, ids, loss))
            best = loss
    found = [e for e in events if isinstance(e, HardPromptFound)]
    assert [(e.step, e.ids) for e in found] == [(step, ids) for step, ids, _ in bests]
    assert [e.train_loss for e in found] == pytest.approx([loss for *_, loss in bests], abs=1e-4)
    if method == "pez":
        assert len(judged) > 1 and found[-1].step > 0
    else:
        assert all(ids == proposals[0][1] for _, ids in proposals)
    with safe_open(events[-1].prompt_path, "pt") as f:
        assert json.loads(f.metadata()["hard_prompt_ids"]) == found[-1].ids
        assert torch.equal(f.get_tensor("prompt"), learner.frozen.embedding.weight[found[-1].ids].float())


def test_stop_and_resume_continue_the_same_search(tiny_config):
    settings = dict(steps=4, checkpoint_every=0, eval_every=0, num_predictions=1)
    straight = logged(search(hard_config(tiny_config, name="straight", **settings)))
    stop = threading.Event()
    stopped = []
    for event in search(hard_config(tiny_config, name="interrupted", **settings), stop):
        stopped += logged([event])
        if isinstance(event, Step) and event.step == 2:
            stop.set()
    assert isinstance(stopped[-1], Finished) and stopped[-1].stopped and stopped[-1].step == 2
    folder = RunFolder.open(stopped[0].run_dir)
    resumed = logged(search(folder.config(), resume=folder.path))
    assert resumed[0].start_step == 2 and [e.step for e in resumed if isinstance(e, Step)] == [3, 4]
    assert resumed[-1].test_loss == straight[-1].test_loss
    _, a = RunFolder.open(straight[0].run_dir).load_prompt()
    _, b = folder.load_prompt()
    assert a["hard_prompt_ids"] == b["hard_prompt_ids"]
    # a hard checkpoint does not resume as another method
    failed = logged(search(folder.config().replace(method="pez"), resume=folder.path))
    assert failed[-1].kind == "failed" and failed[-1].user_error and "method is 'gcg'" in failed[-1].message


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"mode": "discrete"}, "mode must be one of soft, hard"),
        ({"method": "adam"}, "method must be one of pez, gcg, relax"),
        ({"topk": 0}, "topk must be at least 1"),
        ({"candidates": -1}, "candidates must be at least 1"),
        ({"search_batch_size": 0}, "search_batch_size must be at least 1"),
        ({"rescore": -2}, "rescore must be 0"),
        ({"patience": -1}, "patience must be 0"),
        ({"readable_only": "maybe"}, "readable_only must be true or false"),
    ],
)
def test_bad_hard_settings_are_user_errors(changes, message):
    with pytest.raises(UserError, match=message):
        TrainConfig().replace(**changes)


def test_readable_only_reads_true_and_false_from_text():
    assert TrainConfig().replace(readable_only="false").search.readable_only is False
    assert TrainConfig.from_dict({"readable_only": "True"}).search.readable_only is True


def test_a_stalled_gcg_search_goes_on_from_the_best_prompt(tiny_config, monkeypatch):
    restarts = []
    monkeypatch.setattr(GCG, "restart", lambda self, ids: (restarts.append(list(ids)), setattr(self, "ids", list(ids))))
    events = logged(
        search(hard_config(tiny_config, name="patient", steps=6, patience=1, eval_every=0, checkpoint_every=0))
    )
    assert isinstance(events[-1], Finished)
    found = [e for e in events if isinstance(e, HardPromptFound)]
    steps_found = {e.step for e in found}
    # every step that found nothing better sends the search back to the best prompt found until then
    assert len(restarts) == 6 - len(steps_found - {0})
    assert all(ids in [e.ids for e in found] for ids in restarts)
    assert restarts[-1] == found[-1].ids or 6 in steps_found
