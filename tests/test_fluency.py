"""Readable prompts: the fluency term is the model's own cross-entropy of the prompt, lambda 0 is the plain
search, the Pareto front holds no dominated point; and the model's own reading of a soft prompt."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F
from helpers import logged

import promptgrad.learners.search.gcg
from promptgrad.cli.main import main
from promptgrad.config import GCGSettings
from promptgrad.events import Finished, FrontPoint, ParetoFront, Reading
from promptgrad.learners.search.fluency import context_ids, nats_per_token, one_hot_gradient, text_nats_per_token
from promptgrad.learners.search.gcg import GCG
from promptgrad.learners.search.hard_learner import dominates, with_point
from promptgrad.learners.search.projection import Projection, RoundTrip, allowed_tokens
from promptgrad.model.template import PROMPT_PLACEHOLDER, Template, TemplateEncoder
from promptgrad.readout.explain import IdentityContext, continue_greedily, read_back, read_prompt
from promptgrad.train.loop import train


@pytest.fixture(scope="module")
def encoder(frozen):
    return TemplateEncoder(Template.parse("Here are two {prompt} {x} and {y}"), frozen.tokenizer, 4)


def test_the_fluency_term_is_the_models_own_cross_entropy_of_the_prompt_text(frozen, encoder):
    context = context_ids(encoder)
    assert frozen.tokenizer.decode(context) == "Here are two"
    prompts = [encoder.tokens(" words with opposite meanings:"), encoder.tokens(" or inhibited versa;")]
    for ids in prompts:
        ours = float(nats_per_token(frozen, context, torch.tensor([ids]))[0])
        input_ids = torch.tensor([context + ids])
        labels = torch.full_like(input_ids, -100)
        labels[0, len(context) :] = input_ids[0, len(context) :]
        with torch.no_grad():
            plain = frozen.model(input_ids=input_ids, labels=labels).loss.item()  # a plain forward pass
        assert ours == pytest.approx(plain, rel=1e-5)
    assert text_nats_per_token(frozen, encoder, " or inhibited versa;") == pytest.approx(
        float(nats_per_token(frozen, context, torch.tensor([prompts[1]]))[0]), rel=1e-6
    )


def test_the_fluency_gradient_predicts_the_exact_change_of_a_swap_at_the_last_position(frozen, encoder):
    """At the last position the target part is exact: swapping its token changes nats/token by exactly the
    difference of the gradient's entries (the inputs part cannot move: nothing reads that token)."""
    context, ids = context_ids(encoder), encoder.tokens(" antonyms are")
    gradient = one_hot_gradient(frozen, context, ids)
    for other in encoder.tokens(" the cat sat"):
        swapped = ids[:-1] + [other]
        exact = nats_per_token(frozen, context, torch.tensor([swapped, ids]))
        assert float(exact[0] - exact[1]) == pytest.approx(float(gradient[-1, other] - gradient[-1, ids[-1]]), abs=1e-4)


def test_the_fluency_gradient_is_autograds_through_a_plain_forward_of_the_one_hot_prompt(frozen, encoder):
    """Both parts, at every position: nats/token written out here as a function of the one-hot prompt, which
    is the model's input (one-hot times the embedding table) and the cross-entropy's target at once, and
    differentiated by autograd. The inputs part alone (the target held fixed) is checked to be far above the
    tolerance before the last position, so a gradient without it, or with it scaled, cannot pass."""
    context, ids = context_ids(encoder), encoder.tokens(" antonyms are opposites")
    table = frozen.model.get_input_embeddings().weight.detach()
    one_hot = F.one_hot(torch.tensor(ids), table.shape[0]).float().requires_grad_(True)

    def nats(targets: torch.Tensor) -> torch.Tensor:
        embeds = torch.cat([table[torch.tensor(context)], one_hot @ table])[None]
        logits = frozen.model(inputs_embeds=embeds).logits[0, len(context) - 1 : -1]  # position t predicts token t + 1
        return -(targets * logits.log_softmax(-1)).sum(-1).mean()

    (whole,) = torch.autograd.grad(nats(one_hot), one_hot)
    (inputs_part,) = torch.autograd.grad(nats(one_hot.detach()), one_hot)
    assert (
        len(ids) >= 4 and inputs_part[:-1].abs().amax(-1).min() > 1e-3
    )  # 100x the tolerance, at each earlier position
    assert inputs_part[-1].abs().max() == 0  # nothing reads the last token
    torch.testing.assert_close(one_hot_gradient(frozen, context, ids), whole, atol=1e-5, rtol=1e-4)


def gcg_trajectory(setup_parts, fluency: float | None, steps: int = 3) -> list[list[int]]:
    """`fluency` None: GCG built as before the fluency term existed (no fluency, no context given)."""
    frozen, projection, allowed, round_trip, ids, batch, context = setup_parts
    settings = (
        GCGSettings(topk=16, candidates=24) if fluency is None else GCGSettings(topk=16, candidates=24, fluency=fluency)
    )
    gcg = GCG(
        frozen,
        projection,
        allowed,
        round_trip,
        ids,
        settings,
        torch.Generator().manual_seed(0),
        context=None if fluency is None else context,
    )
    return [gcg.search_step(batch).ids for _ in range(steps)]


GCG_PAIRS = [("hot", "cold"), ("big", "small"), ("up", "down")]  # the batch every GCG step here searches on


@pytest.fixture(scope="module")
def gcg_parts(frozen, encoder):
    allowed = allowed_tokens(frozen.tokenizer, frozen.embedding.weight.shape[0], True)
    projection = Projection(frozen.embedding.weight, allowed)
    round_trip = RoundTrip(encoder, ["hot", "big"])
    ids = encoder.tokens(" antonyms and more")[:4]
    batch = encoder.collate([encoder.encode(x, y) for x, y in GCG_PAIRS])
    return frozen, projection, allowed, round_trip, ids, batch, context_ids(encoder)


def test_lambda_zero_is_exactly_the_plain_search(gcg_parts, monkeypatch):
    plain = gcg_trajectory(gcg_parts, None)

    def never(*args, **kwargs):
        raise AssertionError("lambda 0 computed a fluency term")

    monkeypatch.setattr(promptgrad.learners.search.gcg, "nats_per_token", never)
    monkeypatch.setattr(promptgrad.learners.search.gcg, "fluency_gradient", never)
    assert gcg_trajectory(gcg_parts, 0.0) == plain  # nothing of the fluency term is touched, same prompts


@torch.no_grad()
def plain_objective(
    frozen, encoder, pairs, context, fluency: float, prompts: list[list[int]]
) -> list[tuple[float, float]]:
    """(task loss, task loss + lambda * nats/token) of each prompt, from plain unpadded forward passes: the mean
    cross-entropy per target token over the pairs, and the prompt's own mean cross-entropy after `context`."""
    total, count = torch.zeros(len(prompts)), 0
    for x, y in pairs:
        encoded = encoder.encode(x, y)
        rows = []
        for prompt in prompts:
            slots = iter(prompt)
            rows.append([next(slots) if t == PROMPT_PLACEHOLDER else t for t in encoded.context] + encoded.target)
        n = len(encoded.target)
        logits = frozen.model(input_ids=torch.tensor(rows)).logits[:, -n - 1 : -1]
        targets = torch.tensor(encoded.target).expand(len(prompts), n)
        total += F.cross_entropy(logits.transpose(1, 2), targets, reduction="none").sum(-1)
        count += n
    logits = frozen.model(input_ids=torch.tensor([context + p for p in prompts])).logits[:, len(context) - 1 : -1]
    nats = F.cross_entropy(logits.transpose(1, 2), torch.tensor(prompts), reduction="none").mean(-1)
    task = total / count
    return list(zip(task.tolist(), (task + fluency * nats).tolist()))


def test_a_fluent_step_keeps_the_best_candidate_by_task_loss_plus_lambda_nats(gcg_parts, encoder):
    """Each step keeps, of the prompt it started from and every candidate it scored (those that passed the
    round trip), the one with the lowest task loss + lambda * nats/token, both recomputed here from plain
    forward passes. A step that chose by the task loss alone, or that kept a worse prompt, fails."""
    frozen, projection, allowed, round_trip, ids, batch, context = gcg_parts
    fluency = 1.0
    scored: list[torch.Tensor] = []

    def recording_round_trip(candidates: torch.Tensor) -> torch.Tensor:
        ok = round_trip(candidates)
        scored.append(candidates[ok])
        return ok

    gcg = GCG(
        frozen,
        projection,
        allowed,
        recording_round_trip,
        ids,
        GCGSettings(topk=16, candidates=24, fluency=fluency),
        torch.Generator().manual_seed(0),
        context=context,
    )
    moved = 0
    for _ in range(3):
        before = list(gcg.ids)
        scored.clear()
        step = gcg.search_step(batch)
        (candidates,) = scored
        assert len(candidates) > 1
        prompts = [before] + candidates.tolist()
        objective = dict(
            zip(map(tuple, prompts), plain_objective(frozen, encoder, GCG_PAIRS, context, fluency, prompts))
        )
        assert tuple(step.ids) in objective
        best = min(combined for _, combined in objective.values())
        assert objective[tuple(step.ids)][1] <= best + 1e-4, (step.ids, objective)
        assert step.loss == pytest.approx(objective[tuple(step.ids)][0], abs=1e-4)  # the kept prompt's task loss
        assert step.previous_loss == pytest.approx(objective[tuple(before)][1], abs=1e-4)
        moved += step.ids != before
    assert moved  # the check above compared real choices, not a prompt that never changed


def test_the_pareto_front_never_holds_a_dominated_point():
    rng = random.Random(0)
    front: list[FrontPoint] = []
    for i in range(300):
        point = FrontPoint([i], f"p{i}", rng.uniform(1, 5), rng.uniform(2, 12))
        front = with_point(front, point) or front
        assert not any(dominates(a, b) for a in front for b in front)
    assert len(front) >= 3 and front == sorted(front, key=lambda p: p.train_loss)


def test_a_fluent_hard_run_records_its_front_and_eval_shows_it(tiny_config, capsys):
    config = tiny_config.replace(
        mode="hard",
        method="gcg",
        steps=3,
        search_batch_size=4,
        topk=16,
        candidates=16,
        eval_every=0,
        fluency=0.5,
        init="text: antonyms",
        name="fluent",
    )
    events = logged(train(config))
    assert isinstance(events[-1], Finished)
    fronts = [e for e in events if isinstance(e, ParetoFront)]
    assert fronts and fronts[0].step == 0
    for front in fronts:
        assert not any(dominates(a, b) for a in front.points for b in front.points)
    capsys.readouterr()
    assert main(["eval", f"{config.machine.runs_dir}/fluent", "--text", " words with opposite meanings:"]) == 0
    out = capsys.readouterr().out
    assert "nats/token" in out and "lambda 0.5" in out and "words with opposite meanings:" in out


# ---- the model's own reading of a soft prompt -----------------------------------------------------


def test_a_real_tokens_embedding_in_the_slot_reads_as_the_token_written_out(frozen):
    """The mechanics: putting a token's embedding in the identity context's slot gives exactly the
    continuation of the same context with the token written as text."""
    context = IdentityContext(frozen.tokenizer)
    table = frozen.embedding.weight
    for token in frozen.tokenizer(" river stone happy", add_special_tokens=False)["input_ids"]:
        spliced = continue_greedily(frozen, context.embeds(frozen, table[torch.tensor([[token]])]))
        written = continue_greedily(frozen, table[torch.tensor([context.before + [token] + context.after])])
        assert spliced == written


def test_reading_a_prompt_gives_each_position_and_the_whole(frozen):
    vectors = torch.randn(4, frozen.hidden_size, generator=torch.Generator().manual_seed(0)) * 0.1
    reading = read_prompt(frozen, vectors)
    assert len(reading.positions) == 4 and all(isinstance(t, str) for t in reading.positions)
    assert isinstance(reading.whole, str)
    check = read_back(frozen, n=20)
    assert check.n == 20 and 0.0 <= check.rate <= 1.0


def test_explain_prints_readings_and_the_read_back_rate(tiny_config, capsys):
    events = logged(train(tiny_config.replace(name="explained", steps=2)))
    assert any(isinstance(e, Reading) for e in events)  # the loop reads the prompt at each readout too
    capsys.readouterr()
    assert main(["explain", f"{tiny_config.machine.runs_dir}/explained", "--samples", "10"]) == 0
    out = capsys.readouterr().out
    assert "the model reads" in out and "real-token read-back" in out and "all" in out
