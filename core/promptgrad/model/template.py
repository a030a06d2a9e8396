"""The template: where the prompt, the input and the target stand, and how a pair becomes token ids.

`Here are two {prompt} {x} and {y}` is split into literal text and three slots. A single space just
before a slot belongs to the slot: ` {x}` becomes the tokens of " hot" (how BPE vocabularies spell a word
after a space), and the soft prompt stands in for " {prompt}" as a whole, just as the hand-written
baseline " antonyms" (with its own space) does. Text after `{y}` is ignored: a causal model's loss on the
target cannot depend on it.

Every sequence is encoded as `context` (everything before `{y}`, with the prompt positions marked) and
`target` (the tokens of " y"). Batches are padded so that all sequences end in the same column: the
target tokens are then the last columns, and the model computes logits for those columns only
(`logits_to_keep`), never for the whole vocabulary at every position. The padding goes right after the
template's constant prefix (the tokens before the first slot, "Here are two"), not before it: every row
then starts with the same `prefix_len` columns, whose keys and values the model computes once and
reuses (prefix_cache.py). Position ids skip the padding, so a row reads exactly as it would unpadded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from promptgrad.errors import UserError

SLOTS = ("{prompt}", "{x}", "{y}")
PROMPT_PLACEHOLDER = -1  # id marking a prompt position before its vectors are scattered in


@dataclass(frozen=True)
class Template:
    text: str
    before_y: tuple[str, ...]  # literal pieces and "{prompt}"/"{x}" slots, in order, up to {y}
    y_prefix: str  # the space (or nothing) that precedes the target

    @staticmethod
    def parse(text: str) -> Template:
        for slot in SLOTS:
            n = text.count(slot)
            if n != 1:
                what = "has no" if n == 0 else f"has {n}"
                raise UserError(
                    f"template {what} {slot} (it needs each of {{prompt}}, {{x}}, {{y}} exactly once): {text!r}",
                    "template",
                )
        if text.index("{y}") < max(text.index("{prompt}"), text.index("{x}")):
            raise UserError(
                f"template must put {{y}} after {{prompt}} and {{x}} (the model reads left to right): {text!r}",
                "template",
            )
        head = text[: text.index("{y}")]
        y_prefix = " " if head.endswith(" ") else ""
        head = head[: len(head) - len(y_prefix)]
        pieces = [p for p in re.split(r"(\{prompt\}|\{x\})", head) if p]
        return Template(text, tuple(pieces), y_prefix)


@dataclass
class EncodedPair:
    context: list[int]  # token ids up to {y}, PROMPT_PLACEHOLDER at the prompt's positions
    target: list[int]  # token ids of the target, e.g. " cold"


@dataclass
class Batch:
    """A padded batch (see the module's docstring). `input_ids` has the prompt positions marked by `prompt_mask`."""

    input_ids: torch.Tensor  # [B, L]
    attention_mask: torch.Tensor  # [B, L]
    position_ids: torch.Tensor  # [B, L]
    prompt_mask: torch.Tensor  # [B, L] bool
    target_ids: torch.Tensor  # [B, T], right-aligned with the last T columns of the inputs
    target_mask: torch.Tensor  # [B, T] bool
    prefix_len: int = 0  # leading columns that hold the same tokens in every row, none of them padding
    prefix_ids: tuple[int, ...] = ()  # those tokens, kept on the host: reading them off a GPU tensor would sync

    def map(self, f) -> Batch:
        """The batch with `f` applied to each of its tensors."""
        return Batch(
            *(f(t) for t in vars(self).values() if isinstance(t, torch.Tensor)),
            prefix_len=self.prefix_len,
            prefix_ids=self.prefix_ids,
        )

    def to(self, device: torch.device | str) -> Batch:
        if torch.device(device).type == "cuda":  # from page-locked memory, without waiting for the copy
            return self.map(lambda t: t.pin_memory().to(device, non_blocking=True))
        return self.map(lambda t: t.to(device))


class TemplateEncoder:
    """Tokenises pairs under a template; the prompt may be any number of positions."""

    def __init__(self, template: Template, tokenizer, prompt_len: int):
        self.template = template
        self.tokenizer = tokenizer
        self.prompt_len = prompt_len
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._cache: dict[str, list[int]] = {}
        # Llama-style tokenizers expect a BOS token first; GPT-2's does not add one
        with_special = tokenizer("a")["input_ids"]
        self.bos = [with_special[0]] if len(with_special) > 1 and with_special[0] == tokenizer.bos_token_id else []
        self.prefix_len = len(self.encode("x", "y").context) - len(self.encode("x", "y", after_prefix=True).context)

    def tokens(self, text: str) -> list[int]:
        if text not in self._cache:
            self._cache[text] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self._cache[text]

    def encode(self, x: str, y: str, after_prefix: bool = False) -> EncodedPair:
        """The pair's ids; `after_prefix` leaves out the constant prefix (BOS and the text before the first slot)."""
        context = [] if after_prefix else list(self.bos)
        pieces = self.template.before_y
        for i, piece in enumerate(pieces):
            if after_prefix and i == 0 and piece not in ("{prompt}", "{x}"):
                continue
            nxt = pieces[i + 1] if i + 1 < len(pieces) else None
            if nxt in ("{prompt}", "{x}") and piece.endswith(" "):
                piece = piece[:-1]  # the space before a slot belongs to the slot
            if piece == "{prompt}":
                context += [PROMPT_PLACEHOLDER] * self.prompt_len
            elif piece == "{x}":
                space = " " if i > 0 and pieces[i - 1].endswith(" ") else ""
                context += self.tokens(space + x)
            elif piece:
                context += self.tokens(piece)
        target = self.tokens(self.template.y_prefix + y)
        if not target:
            raise UserError(f"target {y!r} encodes to no tokens; remove empty targets from the data")
        return EncodedPair(context, target)

    def collate(self, pairs: list[EncodedPair], inputs: str = "train") -> Batch:
        """Inputs padded after the prefix: "train" is context + target[:-1] (each column predicts the
        next target token), "score" adds the last target token (one more column predicts what follows
        the target), "context" is the context alone (for generation)."""
        seqs = {
            "train": lambda p: p.context + p.target[:-1],
            "score": lambda p: p.context + p.target,
            "context": lambda p: p.context,
        }[inputs]
        seqs = [seqs(p) for p in pairs]
        width = max(map(len, seqs))
        t_width = max(len(p.target) for p in pairs)
        B = len(pairs)
        input_ids = torch.full((B, width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((B, width), dtype=torch.long)
        target_ids = torch.full((B, t_width), self.pad_id, dtype=torch.long)
        target_mask = torch.zeros((B, t_width), dtype=torch.bool)
        p = self.prefix_len
        for i, (seq, pair) in enumerate(zip(seqs, pairs)):
            input_ids[i, :p], input_ids[i, width - len(seq) + p :] = torch.tensor(seq[:p]), torch.tensor(seq[p:])
            attention[i, :p] = attention[i, width - len(seq) + p :] = 1
            target_ids[i, t_width - len(pair.target) :] = torch.tensor(pair.target)
            target_mask[i, t_width - len(pair.target) :] = True
        prompt_mask = input_ids == PROMPT_PLACEHOLDER
        input_ids[prompt_mask] = self.pad_id
        position_ids = (attention.cumsum(-1) - 1).clamp(min=0)
        return Batch(input_ids, attention, position_ids, prompt_mask, target_ids, target_mask, p, tuple(seqs[0][:p]))
