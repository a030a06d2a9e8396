"""Build the inflection tasks (plurals, past-tense, comparatives): WordNet 3.0 words, LemmInflect's forms.

Sources:
- the words: WordNet 3.0's single lowercase nouns, verbs and adjectives (Debian package `wordnet-base`;
  WordNet licence, data/licences/WORDNET_LICENSE), read by data/build_wordnet.py's reader;
- their forms: the lexicon that ships inside LemmInflect 0.2.3 (MIT, data/licences/LEMMINFLECT_LICENSE),
  whose word forms LemmInflect derived from the NIH/NLM SPECIALIST Lexicon (open source under NLM's terms,
  data/licences/SPECIALIST_LEXICON_NOTICE). AGID is not its source: LemmInflect only tests against AGID.
  Only the lexicon is looked up (`getAllInflections`); LemmInflect's neural guess for unknown words
  (`getAllInflectionsOOV`) is never used, so every answer is a form the lexicon lists (its first spelling).

    apt-get install wordnet-base
    pip install lemminflect==0.2.3
    python data/build_inflection.py       # writes data/tasks/{plurals,past-tense,comparatives}.jsonl, prints counts

The lexicon does not say which adjectives compare with "more" (it kept no periphrastic/invariant flag), so
an adjective without -er/-est forms gets "more X" only where WordNet derives a quality noun in -ness from
it ("honest" -> "honestness"): that marks a gradable quality, while relational adjectives such as
"wooden" or "abdominal" have none. Pairs whose answer equals the input ("sheep", "cut") are skipped: a
model that parrots its input would score on them. Tasks over 8,000 pairs keep the most frequent inputs
by WordNet's SemCor counts (ties by a hash of the pair), then are sorted.
"""

from __future__ import annotations

import sys

from build_wordnet import WORD, read_index, read_synsets, wordnet_arguments
from lemminflect import getAllInflections
from task_files import write_pairs


def lexicon_form(word: str, upos: str, tag: str) -> str | None:
    """The first spelling the LemmInflect lexicon lists for `word` as `tag`, if it lists one."""
    spellings = getAllInflections(word, upos=upos).get(tag)
    return spellings[0] if spellings else None


def main(argv: list[str] | None = None) -> int:
    args = wordnet_arguments(argv, __doc__.splitlines()[0])
    if args is None:
        return 2
    synsets, index = read_synsets(args.wordnet), read_index(args.wordnet)
    words = {
        pos: sorted({w for s in synsets.values() if s.pos in pos for w in s.words if WORD.match(w)})
        for pos in ("n", "v", "as")
    }

    def forms(pos: str, upos: str, tag: str) -> set[tuple[str, str]]:
        pairs = {(w, lexicon_form(w, upos, tag)) for w in words[pos]}
        return {(w, f) for w, f in pairs if f and WORD.match(f) and f != w}

    # adjectives WordNet derives a -ness noun from (lexical `+` pointer): gradable, so "more X" is right
    quality = {
        s.words[i - 1]
        for s in synsets.values()
        if s.pos in "as"
        for symbol, target, i, j in s.pointers
        if symbol == "+" and i and j and synsets[target].pos == "n" and synsets[target].words[j - 1].endswith("ness")
    }
    inflected = forms("as", "ADJ", "JJR")
    periphrastic = {(w, f"more {w}") for w in words["as"] if w in quality and getAllInflections(w, upos="ADJ")} - {
        (w, f"more {w}") for w, _ in inflected
    }

    def weight(pos: str):
        return lambda x, y: index.frequency.get((pos, x), 0)

    write_pairs("plurals", forms("n", "NOUN", "NNS"), args.out, weight("n"))
    write_pairs("past-tense", forms("v", "VERB", "VBD"), args.out, weight("v"))
    write_pairs("comparatives", inflected | periphrastic, args.out, weight("a"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
