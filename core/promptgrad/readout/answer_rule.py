"""The accuracy rule, on text: one function judges every answer promptgrad marks right or wrong.

    answer_is_right(" Newspaper.", " Newspaper")          True
    answer_is_right(" Newspaper-bound", " Newspaper")     False: a longer word
    AnswerRule(ignore_case=True).is_right(" newspaper", " Newspaper")   True

**The rule.** The greedy answer, decoded to text and cut at its first newline, begins with the target
(as the template writes it: the space before {y} included), and what follows does not continue the
target's last word. Scoring (evaluation.py's `scoring`), the sample predictions, the probe,
`promptgrad eval` and `promptgrad predict` all call this module, so a pair is judged the same way
everywhere; how the model split its answer into tokens plays no part (` Newsp` + `aper` spells
` Newspaper` as well as the single token ` Newspaper` does).

**What continues a word.** A letter or a digit (any script, combining accents included). A hyphen or
an apostrophe (`-`, `'`, `’`) continues it only when a letter or digit comes right after it, so
`Paper-bound` and `They're` are other words than `Paper` and `They` (a compound, a contraction: the
model did not write the target word alone), while `Paper-`, `Paper - `, `Paper'` (a closing quote) and
`Paper.` end it. The same joiner rule applies the other way round: a target that ends in a joiner
(`pre-`) is continued by a letter (`pre-war`). Why: in English text a hyphen or apostrophe between two
letters is inside a word (well-known, don't, O'Brien); anywhere else it is punctuation. Spaces,
newlines, other punctuation and the end of the text end a word.

**Normalisations** (lm-evaluation-harness's exact match has the same ones), each off by default and
recorded with the run (config.py's [scoring] group); applied to the answer and the target alike,
before the rule: `ignore_regex` removes every match of a regular expression, `strip_whitespace`
removes whitespace at the start (the end never matters: whitespace ends a word), `ignore_case`
case-folds, `ignore_punctuation` removes punctuation (so `U.S.` matches `US`; note that `Paper-bound`
then reads `Paperbound`, still another word, consistently with the joiner rule). A target that
normalises to nothing is judged on its exact text.

**Judging a beginning.** Scoring mostly knows only the first tokens of the greedy answer (one
teacher-forced pass). `AnswerRule.verdict(text, target, complete=False)` judges such a beginning when
nothing that could follow changes the verdict, and says None otherwise; the scorer then generates. Every
normalisation but the regular expression maps text character by character, so the normalised beginning
is the beginning of the normalised answer; with a regular expression every answer is generated whole.
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass

JOINERS = "-'’"  # continue a word when a letter or digit follows (see above)


def is_word_character(c: str) -> bool:
    return c.isalnum() or unicodedata.category(c).startswith("M")  # M: combining accents (e + U+0301)


def is_punctuation(c: str) -> bool:
    return c in string.punctuation or unicodedata.category(c).startswith("P")


def continues_word(text: str, cut: int, complete: bool) -> bool | None:
    """Does text[cut:] continue the word that text[:cut] ends with? None: that depends on text not yet
    seen (the beginning of an answer ends right there, or after a joiner)."""
    before, after = text[:cut], text[cut:]
    if not before:
        return False
    if is_word_character(before[-1]):
        if not after:
            return False if complete else None
        if is_word_character(after[0]):
            return True
        if after[0] in JOINERS:
            if len(after) < 2:
                return False if complete else None
            return is_word_character(after[1])
        return False
    if before[-1] in JOINERS and len(before) >= 2 and is_word_character(before[-2]):  # "pre-" + "war"
        if not after:
            return False if complete else None
        return is_word_character(after[0])
    return False


@dataclass(frozen=True)
class AnswerRule:
    """The rule with its normalisations (all off: exact text)."""

    ignore_case: bool = False
    ignore_punctuation: bool = False
    strip_whitespace: bool = False
    ignore_regex: str = ""

    @staticmethod
    def of(config) -> AnswerRule:
        """The rule a run's settings (a TrainConfig) declare in their [scoring] group."""
        s = config.scoring
        return AnswerRule(s.ignore_case, s.ignore_punctuation, s.strip_whitespace, s.ignore_regex)

    @property
    def exact(self) -> bool:
        return self == AnswerRule()

    def describe(self) -> str:
        """A few words shown beside every accuracy: 'exact text', or what is ignored."""
        ignored = [
            what
            for on, what in (
                (self.ignore_case, "case"),
                (self.ignore_punctuation, "punctuation"),
                (self.strip_whitespace, "leading whitespace"),
                (bool(self.ignore_regex), f"/{self.ignore_regex}/"),
            )
            if on
        ]
        return "exact text" if not ignored else "ignoring " + ", ".join(ignored)

    def normalise(self, text: str) -> str:
        if self.ignore_regex:
            text = re.sub(self.ignore_regex, "", text)
        if self.strip_whitespace:
            text = text.lstrip()
        if self.ignore_case:
            text = text.casefold()  # not lower(): casefold maps character by character (lower() has a final sigma)
        if self.ignore_punctuation:
            text = "".join(c for c in text if not is_punctuation(c))
        return text

    def is_right(self, answer: str, target: str) -> bool:
        """The rule on a whole answer (cut at its first newline here, whatever the caller passed)."""
        verdict = self.verdict(answer.split("\n")[0], target, complete=True)
        assert verdict is not None  # a whole answer is always judged
        return verdict

    def verdict(self, answer: str, target: str, complete: bool) -> bool | None:
        """The rule on `answer`, the whole first line of the answer (`complete`) or only its beginning:
        then None when what comes next could still change the verdict."""
        if not complete and (self.ignore_regex or "\ufffd" in answer):
            return None  # a regex may match across what follows; U+FFFD: a character cut in its bytes
        a, t = self.normalise(answer), self.normalise(target)
        if not t.strip():
            a, t = answer, target  # nothing left to compare: the exact text decides
        if a.startswith(t):
            continued = continues_word(a, len(t), complete)
            return None if continued is None else not continued
        if complete or not t.startswith(a):
            return False
        return None  # a beginning of the target: the rest is not written yet


def answer_is_right(answer: str, target: str, rule: AnswerRule = AnswerRule()) -> bool:
    """The accuracy rule (see the module's docstring) on a whole answer as decoded."""
    return rule.is_right(answer, target)


def check_regex(value: str) -> str | None:
    """For config.py: the regular expression of `ignore_regex` compiles."""
    try:
        re.compile(value)
    except re.error as e:
        return f"ignore_regex {value!r} is not a regular expression ({e}); e.g. '\\b(the|a) '"
    return None
