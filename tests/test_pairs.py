"""The seeded split: a pair and its reverse always on the same side; --train-size trims training only."""

import pytest

from promptgrad.errors import UserError
from promptgrad.pairs import Pair, load_pairs, split_pairs


def test_reverse_pairs_never_straddle_the_split():
    pairs = load_pairs("antonyms")
    split = split_pairs(pairs, 0.2, seed=0)
    train, test = set(split.train), set(split.test)
    assert not train & test
    assert abs(len(test) - 0.2 * len(pairs)) < 10
    reversed_across = [p for p in test if Pair(p.y, p.x) in train]
    assert reversed_across == []
    assert split_pairs(pairs, 0.2, seed=0).test == split.test  # seeded
    assert split_pairs(pairs, 0.2, seed=1).test != split.test


def test_train_size_trims_only_the_training_side():
    pairs = load_pairs("antonyms")
    full, small = split_pairs(pairs, 0.2, seed=0), split_pairs(pairs, 0.2, seed=0, train_size=100)
    assert len(small.train) == 100 and small.train == full.train[:100]
    assert small.test == full.test


def test_csv_with_named_columns(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("word,opposite\nhot,cold\nbig,small\n")
    assert load_pairs(str(path), "word", "opposite") == [Pair("hot", "cold"), Pair("big", "small")]
    with pytest.raises(UserError, match="has no column 'x'"):
        load_pairs(str(path))
