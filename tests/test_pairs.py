"""Loading pairs (cells used as written, one-line refusals that say the file and line) and the seeded split:
a pair and its reverse always on the same side; --train-size trims training only."""

import os
import socket
import threading
import time

import pytest

from promptgrad.errors import UserError
from promptgrad.problem.pairs import Pair, load_pairs, split_pairs


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


def test_csv_keeps_a_newline_inside_a_quoted_field(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_bytes(b'x,y\n"two\nlines",one line\r\nhot,cold\n')
    assert load_pairs(str(path)) == [Pair("two\nlines", "one line"), Pair("hot", "cold")]


@pytest.mark.parametrize(
    "name, content",
    [
        ("bom.jsonl", '\ufeff{"x": "hot", "y": "cold"}\r\n{"x": "big", "y": "small"}\n'),
        ("bom.json", '\ufeff[{"x": "hot", "y": "cold"}, {"x": "big", "y": "small"}]'),
        ("bom.csv", "\ufeffx,y\nhot,cold\nbig,small\n"),
    ],
    ids=["jsonl", "json", "csv"],
)
def test_a_utf8_byte_order_mark_is_allowed(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8"))
    assert load_pairs(str(path)) == [Pair("hot", "cold"), Pair("big", "small")]


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085"], ids=["U+2028", "U+2029", "U+0085"])
def test_jsonl_lines_end_only_at_newline(tmp_path, separator):
    path = tmp_path / "pairs.jsonl"  # JSON allows these raw inside a string; str.splitlines() splits on them
    path.write_bytes(f'{{"x": "a{separator}b", "y": "c"}}\n{{"x": "hot", "y": "cold"}}\n'.encode("utf-8"))
    assert load_pairs(str(path)) == [Pair(f"a{separator}b", "c"), Pair("hot", "cold")]


def test_invalid_utf8_is_refused_with_the_line_and_byte(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(b'{"x": "hot", "y": "cold"}\n{"x": "caf\xe9", "y": "tea"}\n')
    with pytest.raises(UserError) as caught:
        load_pairs(str(path))
    assert str(caught.value) == f"data file {path} line 2 (byte 36) is not valid UTF-8; re-save the file as UTF-8"
    assert "\n" not in str(caught.value)


def test_integers_are_kept_and_empty_rows_are_counted(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        '{"x": "zero", "y": 0}\n{"x": "-12", "y": -12}\n{"x": "a", "y": null}\n'
        '{"x": "b"}\n{"x": " ", "y": "c"}\n{"x": "hot", "y": " cold "}\n'
    )
    pairs = load_pairs(str(path))
    assert pairs == [Pair("zero", "0"), Pair("-12", "-12"), Pair("hot", "cold")]
    assert isinstance(pairs, list) and pairs.skipped == 3
    assert load_pairs("antonyms").skipped == 0


@pytest.mark.parametrize(
    "name, content, message",
    [
        (
            "p.jsonl",
            '{"x": "a", "y": "b"}\n\n{"x": "price", "y": 1.50}\n',
            "data file {path} line 3: column 'y' is the number 1.50, not text; write it as a string (\"1.50\") "
            "so it is used as written",
        ),
        (
            "p.json",
            '[{"x": "a", "y": "b"}, {"x": false, "y": "b"}]',
            "data file {path} item 2: column 'x' is the boolean false, not text; write it as a string (\"false\") "
            "so it is used as written",
        ),
        (
            "p.jsonl",
            '{"x": "a", "y": ["b", "c"]}\n',
            'data file {path} line 1: column \'y\' is a list ["b", "c"], not text; give one string per cell',
        ),
    ],
    ids=["float", "bool", "list"],
)
def test_other_values_are_refused_rather_than_altered(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(UserError) as caught:
        load_pairs(str(path))
    assert str(caught.value) == message.format(path=path)


@pytest.mark.parametrize("offline", [{"HF_HUB_OFFLINE": "1"}, {}], ids=["offline-set", "unreachable"])
def test_an_unreachable_hub_fails_at_once(monkeypatch, offline):
    import datasets
    from huggingface_hub import constants

    from promptgrad import hub

    with socket.socket() as s:  # a port on which nothing listens: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in offline.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(hub, "_HUB_REACHABLE", None)
    before = datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
    started = time.monotonic()
    with pytest.raises(UserError, match="cannot be reached from here .* not in the local cache") as caught:
        load_pairs("someone/some-set")
    assert time.monotonic() - started < 5  # it retried for about 94 s before (datasets is imported above, not timed)
    assert "\n" not in str(caught.value)
    assert (datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE) == before  # offline for that call only


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_path_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path, kind):
    path = tmp_path / "pairs.jsonl"
    os.mkfifo(path) if kind == "fifo" else path.mkdir()
    raised = []

    def load():
        try:
            load_pairs(str(path))
        except Exception as e:  # looked at below, in the test's own thread
            raised.append(e)

    thread = threading.Thread(target=load, daemon=True)  # so that a regression fails rather than hangs
    thread.start()
    thread.join(10)
    if thread.is_alive():  # blocked opening the FIFO: a writer that comes and goes lets it go
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("load_pairs blocked on a FIFO")
    assert len(raised) == 1 and isinstance(raised[0], UserError)
    if kind == "fifo":
        assert str(raised[0]) == f"data file {path} is not a regular file; give a .jsonl, .json or .csv file"
    else:  # a folder is read as one saved by datasets' save_to_disk; an empty one is not
        assert str(raised[0]).startswith(f"data {path} cannot be read as a folder saved by datasets' save_to_disk")


PAIRS = [("India", "New Delhi"), ("Afghanistan", "Afghani (AFN)"), ("dependent", "dépendant"), ("0", "zero")]


@pytest.mark.parametrize("form", ["parquet", "save_to_disk", "save_to_disk-dict"])
def test_parquet_files_and_save_to_disk_folders_are_read_through_datasets(tmp_path, form):
    import datasets

    table = datasets.Dataset.from_dict({"country": [x for x, _ in PAIRS], "answer": [y for _, y in PAIRS]})
    if form == "parquet":
        path = tmp_path / "pairs.parquet"
        table.to_parquet(str(path))
    else:
        path = tmp_path / "saved"
        (datasets.DatasetDict({"train": table, "test": table}) if form.endswith("dict") else table).save_to_disk(
            str(path)
        )
    assert load_pairs(str(path), "country", "answer") == [Pair(x, y) for x, y in PAIRS]
    with pytest.raises(UserError, match="has no column 'x'"):
        load_pairs(str(path))
