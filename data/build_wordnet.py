"""Build the WordNet tasks (antonyms, synonyms, hypernyms, meronyms, derivations) from WordNet 3.0.

Source: WordNet 3.0 (Princeton University) as the Debian package `wordnet-base` installs it: the data.*
files (synsets and their pointers) and index.* files (each lemma's senses, most frequent first, and how
often its senses were tagged in the SemCor corpus). Licence: the WordNet licence, data/licences/WORDNET_LICENSE.

    apt-get install wordnet-base
    python data/build_wordnet.py          # writes data/tasks/{antonyms,synonyms,...}.jsonl, prints counts

Only the standard library is used. The output is deterministic (sorted, de-duplicated); antonyms.jsonl is
byte for byte the file the default job has always used (tests/test_tasks.py checks its sha256).
A task over 8,000 pairs keeps the pairs whose words WordNet's SemCor counts say are most frequent.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from task_files import TASKS_DIR, write_pairs

POS_FILES = {"n": "data.noun", "v": "data.verb", "a": "data.adj", "s": "data.adj", "r": "data.adv"}
INDEX_FILES = {"n": "index.noun", "v": "index.verb", "a": "index.adj", "r": "index.adv"}
WORD = re.compile(r"^[a-z]+$")  # a single lowercase word: what x (and most y) must be
PHRASE = re.compile(r"^[A-Za-z]+(?:[ -][A-Za-z]+)*$")  # a y of a few words ("domestic animal", "Old World monkey")


@dataclass
class Synset:
    pos: str  # n, v, a, s (adjective satellite) or r
    words: list[str]  # as written in the data file, adjective markers such as "(a)" removed
    pointers: list[
        tuple[str, tuple[str, int], int, int]
    ]  # symbol, target synset, source word, target word (1-based; 0 = whole synset)


def read_synsets(wordnet_dir: Path) -> dict[tuple[str, int], Synset]:
    """Map (data file, byte offset) to the synset there: pointers address synsets this way."""
    synsets: dict[tuple[str, int], Synset] = {}
    for name in sorted(set(POS_FILES.values())):
        offset = 0
        with open(wordnet_dir / name, "rb") as f:  # bytes, so that offsets are counted as pointers count them
            for raw in f:
                line_offset, offset = offset, offset + len(raw)
                line = raw.decode("latin-1")
                if line.startswith("  "):  # licence header lines
                    continue
                fields = line.split()
                n_words = int(fields[3], 16)
                words = [re.sub(r"\(.*\)$", "", fields[4 + 2 * i]) for i in range(n_words)]
                p = 4 + 2 * n_words
                pointers = []
                for k in range(int(fields[p])):
                    symbol, target_offset, target_pos, source_target = fields[p + 1 + 4 * k : p + 5 + 4 * k]
                    pointers.append(
                        (
                            symbol,
                            (POS_FILES[target_pos], int(target_offset)),
                            int(source_target[:2], 16),
                            int(source_target[2:], 16),
                        )
                    )
                synsets[(name, line_offset)] = Synset(fields[2], words, pointers)
    return synsets


@dataclass
class Index:
    frequency: dict[tuple[str, str], int]  # (pos, lemma) -> times its senses were tagged in SemCor
    first_sense: dict[tuple[str, str], tuple[str, int]]  # (pos, lemma) -> its most frequent synset


def read_index(wordnet_dir: Path) -> Index:
    index = Index({}, {})
    for pos, name in INDEX_FILES.items():
        with open(wordnet_dir / name, encoding="latin-1") as f:
            for line in f:
                if line.startswith("  "):  # licence header lines
                    continue
                # lemma pos synset_cnt p_cnt [ptr_symbol...] sense_cnt tagsense_cnt synset_offset... (senses by frequency)
                fields = line.split()
                lemma, n_pointer_kinds = fields[0], int(fields[3])
                index.frequency[(pos, lemma)] = int(fields[5 + n_pointer_kinds])
                index.first_sense[(pos, lemma)] = (POS_FILES[pos], int(fields[6 + n_pointer_kinds]))
    return index


def phrase(lemma: str) -> str:
    return lemma.replace("_", " ")


def antonyms(synsets: dict[tuple[str, int], Synset]) -> set[tuple[str, str]]:
    """Antonymy is a lexical pointer (`!`) from one word of a synset to one word of another: one directed pair each."""
    pairs = set()
    for synset in synsets.values():
        for symbol, target, source_index, target_index in synset.pointers:
            if symbol != "!":
                continue
            source, other = synset.words[source_index - 1], synsets[target].words[target_index - 1]
            if WORD.match(source) and WORD.match(other) and source != other:
                pairs.add((source, other))
    return pairs


def synonyms(synsets: dict[tuple[str, int], Synset], index: Index) -> set[tuple[str, str]]:
    """A word and another single word of its most frequent synset, in both directions: "big" <-> "large".

    Only the first sense (of each part of speech): every sense of a verb such as "go" would give 30
    synonyms, most of them for rare meanings ("go" -> "whirl").
    """
    pairs = set()
    for (_, lemma), key in index.first_sense.items():
        words = synsets[key].words
        if WORD.match(lemma) and lemma in words:  # spelled so in the synset: index lemmas are lowercased
            pairs.update(pair for w in words if WORD.match(w) and w != lemma for pair in ((lemma, w), (w, lemma)))
    return pairs


def first_noun_senses(synsets: dict[tuple[str, int], Synset], index: Index):
    """Each single lowercase noun with its most frequent synset.

    Only the first sense: a word's other senses lead to meanings few would think of ("dog" -> "chap" as a
    hypernym, "dog" -> "hotdog" as a whole). Index lemmas are lowercased, so a word is kept only where its
    synset spells it in lowercase ("Hokan" is a name).
    """
    for (pos, lemma), key in index.first_sense.items():
        if pos == "n" and WORD.match(lemma) and lemma in synsets[key].words:
            yield lemma, synsets[key]


def related_first_lemmas(noun: str, synset: Synset, synsets: dict[tuple[str, int], Synset], symbol: str):
    """(noun, first lemma of each synset that `symbol` points to), '_' read as a space, when a plain phrase."""
    for pointer, target, _, _ in synset.pointers:
        if pointer == symbol and PHRASE.match(other := phrase(synsets[target].words[0])) and other != noun:
            yield noun, other


def hypernyms(synsets: dict[tuple[str, int], Synset], index: Index) -> set[tuple[str, str]]:
    """A noun -> the first lemma of each direct hypernym (`@`) of its first sense: "dog" -> "canine".

    Instance hypernyms (`@i`, "Paris" -> "national capital") link names, which are capitalised: left out.
    """
    return {
        pair
        for noun, synset in first_noun_senses(synsets, index)
        for pair in related_first_lemmas(noun, synset, synsets, "@")
    }


def meronyms(synsets: dict[tuple[str, int], Synset], index: Index) -> set[tuple[str, str]]:
    """Part -> whole: a noun -> the first lemma of each part holonym (`#p`) of its first sense: "finger" -> "hand"."""
    return {
        pair
        for noun, synset in first_noun_senses(synsets, index)
        for pair in related_first_lemmas(noun, synset, synsets, "#p")
    }


def derivations(synsets: dict[tuple[str, int], Synset]) -> set[tuple[str, str]]:
    """Adjective -> noun along the lexical derivation pointer (`+`): "happy" -> "happiness"."""
    pairs = set()
    for synset in synsets.values():
        if synset.pos not in "as":
            continue
        for symbol, target, source_index, target_index in synset.pointers:
            if symbol == "+" and synsets[target].pos == "n" and source_index and target_index:
                adjective, noun = synset.words[source_index - 1], synsets[target].words[target_index - 1]
                if WORD.match(adjective) and WORD.match(noun) and adjective != noun:
                    pairs.add((adjective, noun))
    return pairs


def wordnet_arguments(argv: list[str] | None, description: str) -> argparse.Namespace | None:
    """--wordnet (the data files' folder) and --out; None, having said why, when WordNet is not installed."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    parser.add_argument("--out", type=Path, default=TASKS_DIR)
    args = parser.parse_args(argv)
    if not (args.wordnet / "data.adj").exists():
        print(
            f"error: no WordNet data files in {args.wordnet}; install them with `apt-get install wordnet-base`",
            file=sys.stderr,
        )
        return None
    return args


def main(argv: list[str] | None = None) -> int:
    args = wordnet_arguments(argv, __doc__.splitlines()[0])
    if args is None:
        return 2
    synsets, index = read_synsets(args.wordnet), read_index(args.wordnet)

    def frequency(word: str) -> int:  # over all parts of speech: the cap keeps pairs of common words
        return sum(index.frequency.get((pos, word), 0) for pos in INDEX_FILES)

    noun_frequency = lambda x, y: index.frequency.get(("n", x), 0)
    write_pairs("antonyms", antonyms(synsets), args.out)  # 6,453 pairs: under the cap, the default job's data
    write_pairs("synonyms", synonyms(synsets, index), args.out, lambda x, y: min(frequency(x), frequency(y)))
    write_pairs("hypernyms", hypernyms(synsets, index), args.out, noun_frequency)
    write_pairs("meronyms", meronyms(synsets, index), args.out, noun_frequency)
    write_pairs("derivations", derivations(synsets), args.out, lambda x, y: index.frequency.get(("a", x), 0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
