"""Rebuild data/antonyms.jsonl from WordNet 3.0 (Debian package `wordnet-base`).

WordNet stores antonymy as *lexical* pointers (symbol `!`) between individual words of two synsets.
Each pointer gives one directed pair (source word -> target word). We keep pairs where both sides are a
single lowercase alphabetic word, so that the target is a plain word a model can complete.

    apt-get install wordnet-base
    python data/build_antonyms.py            # writes data/antonyms.jsonl

The output is deterministic (sorted, de-duplicated). WordNet's licence is in data/WORDNET_LICENSE.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

POS_FILES = {"n": "data.noun", "v": "data.verb", "a": "data.adj", "s": "data.adj", "r": "data.adv"}
WORD = re.compile(r"^[a-z]+$")


def read_synsets(wordnet_dir: Path) -> dict[tuple[str, int], list[str]]:
    """Map (data file, byte offset) to the synset's words; pointers address synsets this way."""
    synsets: dict[tuple[str, int], list[str]] = {}
    for name in sorted(set(POS_FILES.values())):
        with open(wordnet_dir / name, encoding="latin-1") as f:
            while True:
                offset = f.tell()
                line = f.readline()
                if not line:
                    break
                if line.startswith("  "):  # licence header lines
                    continue
                fields = line.split()
                n_words = int(fields[3], 16)
                # adjective words may carry a syntactic marker such as "(a)" or "(ip)"
                words = [re.sub(r"\(.*\)$", "", fields[4 + 2 * i]) for i in range(n_words)]
                synsets[(name, offset)] = words
    return synsets


def antonym_pairs(wordnet_dir: Path) -> list[tuple[str, str]]:
    synsets = read_synsets(wordnet_dir)
    pairs: set[tuple[str, str]] = set()
    for name in sorted(set(POS_FILES.values())):
        for line in open(wordnet_dir / name, encoding="latin-1"):
            if line.startswith("  "):
                continue
            fields = line.split()
            n_words = int(fields[3], 16)
            words = [re.sub(r"\(.*\)$", "", fields[4 + 2 * i]) for i in range(n_words)]
            p = 4 + 2 * n_words
            n_pointers = int(fields[p])
            for k in range(n_pointers):
                symbol, target_offset, target_pos, source_target = fields[p + 1 + 4 * k : p + 5 + 4 * k]
                if symbol != "!":
                    continue
                source_index, target_index = int(source_target[:2], 16), int(source_target[2:], 16)
                target_words = synsets[(POS_FILES[target_pos], int(target_offset))]
                source = words[source_index - 1]
                target = target_words[target_index - 1]
                if WORD.match(source) and WORD.match(target) and source != target:
                    pairs.add((source, target))
    return sorted(pairs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("antonyms.jsonl"))
    args = parser.parse_args(argv)
    if not (args.wordnet / "data.adj").exists():
        print(f"error: no WordNet data files in {args.wordnet}; install them with `apt-get install wordnet-base`", file=sys.stderr)
        return 2
    pairs = antonym_pairs(args.wordnet)
    with open(args.out, "w") as f:
        for x, y in pairs:
            f.write(json.dumps({"x": x, "y": y}) + "\n")
    print(f"wrote {len(pairs)} antonym pairs to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
