"""The accuracy rule on text against the old token rule, and what the scorer's fallback to generation costs.

    python benchmarks/accuracy_rule.py [--model smollm2-135m] [--pairs 200] [--threads 1] [--demos | --task NAME]

A capitalize task (`newspaper` -> `Newspaper`) built from the lowercase single words of the bundled
tasks' files, in the template `{prompt} {x} -> {y}` with the hand-written prompt " Capitalize:" (--demos: three
capitalized examples before it, so that the model capitalizes).
It prints, for the same forward passes: the old scorer's accuracy (the teacher-forced argmaxes must be
the target's tokens, and the token after must not start with a letter, digit, - or '), the new scorer's
(answer_rule.py, with how many pairs fell back to generation and what that took), and the rule applied
to a real greedy generation of every pair (which the new scorer must equal pair for pair), with the
pairs whose mark changed and the time of each.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from promptgrad.model.models import load_model
from promptgrad.model.objective import target_logits
from promptgrad.model.template import Template, TemplateEncoder
from promptgrad.problem.pairs import Pair
from promptgrad.problem.tasks import task_named
from promptgrad.readout.answer_rule import answer_is_right
from promptgrad.readout.evaluation import decoded, greedy_answers, score_prompt

DATA = Path(__file__).resolve().parent.parent / "data" / "tasks"


def capitalize_pairs(n: int) -> list[Pair]:
    words: list[str] = []
    for path in sorted(DATA.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            x = json.loads(line)["x"]
            if x.isalpha() and x.islower() and x not in words:
                words.append(x)
    step = max(1, len(words) // n)
    return [Pair(w, w.capitalize()) for w in words[::step][:n]]


@torch.inference_mode()
def old_marks(frozen, encoder, pairs, prompt, batch_size) -> list[bool]:
    """The scorer before issue 26: argmaxes spell the target's tokens, and the next token does not start
    with a letter, digit, '-' or "'" (decoded alone)."""
    texts = frozen.tokenizer.batch_decode([[i] for i in range(len(frozen.tokenizer))])
    extends = torch.tensor([bool(t) and (t[0].isalnum() or t[0] in "-'") for t in texts])
    marks = []
    for i in range(0, len(pairs), batch_size):
        batch = encoder.collate([encoder.encode(p.x, p.y) for p in pairs[i : i + batch_size]], inputs="score")
        T = batch.target_ids.shape[1]
        greedy = target_logits(frozen, batch, prompt, n_logits=T + 1).argmax(-1)
        spelled = ((greedy[:, :T] == batch.target_ids) | ~batch.target_mask).all(1)
        marks += (spelled & ~extends[greedy[:, T]]).tolist()
    return marks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--demos", action="store_true", help="three demonstrations before the query (the model then capitalizes)"
    )
    parser.add_argument("--task", help="a bundled task instead (its pairs, template and first hand-written prompt)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# {platform.processor() or platform.machine()}, {args.threads} thread(s), torch {torch.__version__}")
    frozen = load_model(args.model, torch.device("cpu"), torch.float32)
    wording, template, pairs, name = " Capitalize:", "{prompt} {x} -> {y}", capitalize_pairs(args.pairs), "capitalize"
    if args.demos:
        template = "Capitalize: house -> House\nCapitalize: river -> River\nCapitalize: lamp -> Lamp\n" + template
    if args.task:
        task, name = task_named(args.task), args.task
        wording, template = task.baselines[0], task.template
        rows = [json.loads(line) for line in (DATA / f"{args.task}.jsonl").read_text().splitlines()]
        pairs = [Pair(r["x"], r["y"]) for r in rows[:: max(1, len(rows) // args.pairs)][: args.pairs]]
    prompt_ids = frozen.tokenizer(wording, add_special_tokens=False)["input_ids"]
    encoder = TemplateEncoder(Template.parse(template), frozen.tokenizer, len(prompt_ids))
    prompt = frozen.embedding.weight[prompt_ids].detach()
    score_prompt(frozen, encoder, pairs[: args.batch_size], prompt, args.batch_size)  # warm-up

    t0 = time.perf_counter()
    old = old_marks(frozen, encoder, pairs, prompt, args.batch_size)
    t_old = time.perf_counter() - t0
    t0 = time.perf_counter()
    new = score_prompt(frozen, encoder, pairs, prompt, args.batch_size)
    t_new = time.perf_counter() - t0
    t0 = time.perf_counter()
    longest = max(len(encoder.encode(p.x, p.y).target) for p in pairs)
    answers = greedy_answers(frozen, encoder, [p.x for p in pairs], prompt, args.batch_size, longest + 2)
    t_gen = time.perf_counter() - t0
    by_rule = [
        answer_is_right(a.written, decoded(frozen.tokenizer, encoder.encode(p.x, p.y).target))
        for p, a in zip(pairs, answers)
    ]

    n = len(pairs)
    print(f"{args.model}, {name}, {n} pairs of the bundled data, template {template!r}, prompt {wording!r}")
    print(f"old token scorer : {sum(old)}/{n} ({sum(old) / n:.1%}) in {t_old:.2f}s (one pass)")
    print(
        f"new text scorer  : {sum(s.right for s in new.pairs)}/{n} ({new.accuracy:.1%}) in {t_new:.2f}s; {new.generated} pairs "
        f"fell back to generation ({new.generation_seconds:.2f}s of it)"
    )
    print(f"rule on full greedy generation of every pair: {sum(by_rule)}/{n} in {t_gen:.2f}s")
    disagree = [p.x for p, s, r in zip(pairs, new.pairs, by_rule) if s.right != r]
    print(f"new scorer vs the rule on generation: {len(disagree)} pairs differ {disagree[:10]}")
    changed = [(p.x, a.written, o, s.right) for p, a, o, s in zip(pairs, answers, old, new.pairs) if o != s.right]
    print(f"marks changed old -> new: {len(changed)}")
    for x, written, o, r in changed:
        print(f"  {x!r}: wrote {written!r}: {'right' if o else 'wrong'} -> {'right' if r else 'wrong'}")


if __name__ == "__main__":
    main()
