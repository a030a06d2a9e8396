"""The template puts the prompt exactly at {prompt}, wherever it stands, and the loss sees only {y}."""

import pytest
import torch

from promptgrad.errors import UserError
from promptgrad.model.objective import embed_with_prompt, target_loss
from promptgrad.model.template import Template, TemplateEncoder


@pytest.mark.parametrize(
    "template, expected_text",
    [
        ("Here are two {prompt} {x} and {y}", "Here are two|PPP| hot and| cold"),
        ("{prompt} {x} and {y}", "|PPP| hot and| cold"),
        ("{x} is the {prompt} of {y}", "hot is the|PPP| of| cold"),
        ("{x} and {y}{prompt}", None),  # {y} before {prompt}: rejected
    ],
)
def test_prompt_lands_exactly_at_its_slot(frozen, template, expected_text):
    if expected_text is None:
        with pytest.raises(UserError, match="after"):
            Template.parse(template)
        return
    encoder = TemplateEncoder(Template.parse(template), frozen.tokenizer, prompt_len=3)
    pair = encoder.encode("hot", "cold")
    before, after = expected_text.split("|PPP|")
    before_ids = frozen.tokenizer(before, add_special_tokens=False)["input_ids"] if before else []
    after_ids = frozen.tokenizer(after.split("|")[0], add_special_tokens=False)["input_ids"]
    assert pair.context == before_ids + [-1, -1, -1] + after_ids
    assert pair.target == frozen.tokenizer(" cold", add_special_tokens=False)["input_ids"]

    # the prompt vectors land at those positions in the embedded batch, padded rows or not
    pairs = [pair, encoder.encode("extraordinarily", "ordinarily")]
    batch = encoder.collate(pairs)
    prompt = torch.randn(3, frozen.hidden_size)
    embeds = embed_with_prompt(frozen, batch, prompt)
    for row in range(2):
        positions = batch.prompt_mask[row].nonzero().flatten()
        assert len(positions) == 3 and (positions.diff() == 1).all()
        torch.testing.assert_close(embeds[row, positions], prompt)
        assert batch.attention_mask[row, positions].all()


@pytest.mark.parametrize("template", ["no slots at all", "{prompt} {x}", "{x} and {y}", "{prompt} {prompt} {x} {y}"])
def test_bad_templates_say_what_is_missing(template):
    with pytest.raises(UserError, match=r"\{(prompt|x|y)\}"):
        Template.parse(template)


def test_loss_counts_only_target_tokens(frozen):
    """Our loss equals Hugging Face's own causal-LM loss with every label but the target's masked."""
    encoder = TemplateEncoder(Template.parse("Here are two {prompt} {x} and {y}"), frozen.tokenizer, prompt_len=2)
    pairs = [encoder.encode("hot", "cold"), encoder.encode("up", "downwards")]  # targets of different lengths
    prompt = torch.randn(2, frozen.hidden_size)
    ours = target_loss(frozen, encoder.collate(pairs), prompt)

    total, count = 0.0, 0
    for p in pairs:  # one sequence at a time, no padding, full logits: the plain way
        ids = torch.tensor([p.context + p.target])
        embeds = frozen.embedding(ids.clamp(min=0))
        embeds[0, ids[0] == -1] = prompt
        labels = torch.full_like(ids, -100)
        labels[0, -len(p.target) :] = ids[0, -len(p.target) :]
        out = frozen.model(inputs_embeds=embeds, labels=labels)
        total += out.loss.item() * len(p.target)
        count += len(p.target)
    assert ours.item() == pytest.approx(total / count, rel=1e-4)


def test_cached_prefix_gives_the_same_loss_gradient_and_predictions(frozen):
    """The constant prefix ("Here are two") is computed once and reused (prefix_cache.py): the loss and the
    prompt's gradient are those of feeding every column, and so are greedy predictions."""
    import dataclasses

    from promptgrad.readout.evaluation import greedy_answers

    encoder = TemplateEncoder(Template.parse("Here are two {prompt} {x} and {y}"), frozen.tokenizer, prompt_len=2)
    assert encoder.prefix_len == len(frozen.tokenizer("Here are two")["input_ids"]) == 3
    batch = encoder.collate([encoder.encode("hot", "cold"), encoder.encode("extraordinarily", "ordinarily")])
    assert (
        batch.prefix_len == 3
        and (batch.input_ids[:, :3] == batch.input_ids[0, :3]).all()
        and batch.attention_mask[:, :3].all()
    )
    prompt = torch.randn(2, frozen.hidden_size, requires_grad=True)
    grads = []
    for b in (batch, dataclasses.replace(batch, prefix_len=0)):
        loss = target_loss(frozen, b, prompt)
        (grad,) = torch.autograd.grad(loss, prompt)
        grads.append((loss.detach(), grad))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-4, atol=1e-6)
    assert frozen._prefix_caches  # the cache was really used

    front = TemplateEncoder(Template.parse("{prompt} {x} and {y}"), frozen.tokenizer, prompt_len=2)
    assert front.prefix_len == 0  # nothing constant before the prompt: nothing to cache
    xs = ["hot", "big", "extraordinarily"]
    cached = greedy_answers(frozen, encoder, xs, prompt.detach(), 8)
    encoder.prefix_len = 0
    assert greedy_answers(frozen, encoder, xs, prompt.detach(), 8) == cached
