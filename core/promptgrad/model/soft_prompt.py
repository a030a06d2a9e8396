"""The soft prompt: `prompt_len` learnable vectors in the model's input-embedding space.

They are kept as an fp32 master copy, whatever precision the frozen model computes in, so that small
Adam updates are not rounded away; the forward pass casts them to the compute dtype. Initialisations
follow PEFT's prompt-tuning ones: random (the original experiment's), vocabulary rows, or a text; and
`run:<folder>` starts from the prompt another run learned (to train it on under other settings).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from promptgrad.errors import UserError

INIT_KINDS = ("random", "vocab", "text", "run")


def parse_init(init: str) -> tuple[str, str]:
    """The `init` setting's kind and argument: random | vocab | text:<words> | run:<folder>. The one place
    its syntax is read (the settings check it with this, the prompt is made with it)."""
    if init in ("random", "vocab"):
        return init, ""
    kind, colon, argument = init.partition(":")
    if not colon or kind not in ("text", "run"):
        raise UserError(f"init must be random, vocab, text:<words> or run:<run folder>, got {init!r}", "init")
    if not argument.strip():
        example = "'text: antonyms'" if kind == "text" else "'run:runs/first'"
        raise UserError(f"init {kind}:<...> needs something after '{kind}:', e.g. {example}", "init")
    return kind, argument if kind == "text" else argument.strip()


def start_description(init: str) -> str:
    """What the prompt a run starts from is, as its baseline row names it (the Evaluation event's `text`
    beside prompt="untrained", a label kept for old run folders and for the readers that pick the row by
    it): only a random start is an untrained prompt; another run's prompt or a text's tokens are not."""
    kind, argument = parse_init(init)
    return {
        "random": "untrained (random)",
        "vocab": "untrained (random vocabulary rows)",
        "text": f"start: text {argument!r}",
        "run": f"start: run {argument}",
    }[kind]


class SoftPrompt(torch.nn.Module):
    def __init__(self, vectors: torch.Tensor):
        super().__init__()
        self.vectors = torch.nn.Parameter(vectors.detach().float().clone())

    @property
    def prompt_len(self) -> int:
        return self.vectors.shape[0]

    @staticmethod
    def initial(
        init: str,
        prompt_len: int,
        embedding: torch.Tensor,
        tokenizer,
        generator: torch.Generator,
        run_prompt: Callable[[str], torch.Tensor] | None = None,
    ) -> SoftPrompt:
        """`init` is random | vocab | text:<words> | run:<folder>; `embedding` is the frozen [vocab, hidden] table;
        `run_prompt(folder)` reads another run's prompt for run:<folder> (the caller's: run folders are
        storage, which stands above the model)."""
        table = embedding.detach().float()
        kind, argument = parse_init(init)
        if kind == "random":
            # "in-distribution" noise: each dimension gets the table's own mean and standard deviation
            mean, std = table.mean(0), table.std(0)
            noise = torch.randn(prompt_len, table.shape[1], generator=generator, device="cpu").to(table.device)
            return SoftPrompt(mean + std * noise)
        if kind == "vocab":
            special = set(tokenizer.all_special_ids)
            rows = [i for i in torch.randperm(table.shape[0], generator=generator).tolist() if i not in special][
                :prompt_len
            ]
            return SoftPrompt(table[rows])
        if kind == "text":
            ids = tokenizer(argument, add_special_tokens=False)["input_ids"]
            if not ids:
                raise UserError(f"init text {argument!r} encodes to no tokens", "init")
            if len(ids) != prompt_len:  # never repeated or cut without a word (PEFT repeats it)
                raise UserError(
                    f"init text {argument!r} is {len(ids)} token(s), but prompt_len is {prompt_len}: set "
                    f"prompt_len {len(ids)}, or give words that make {prompt_len} tokens",
                    "init",
                )
            return SoftPrompt(table[ids])
        if run_prompt is None:
            raise UserError(f"init {init!r} needs another run's prompt, and nothing here reads run folders", "init")
        vectors = run_prompt(argument)
        if tuple(vectors.shape) != (prompt_len, table.shape[1]):
            raise UserError(
                f"the prompt in {argument} has shape {tuple(vectors.shape)}, but this run needs "
                f"({prompt_len}, {table.shape[1]}): the same model and prompt_len",
                "init",
            )
        return SoftPrompt(vectors.to(table.device))
