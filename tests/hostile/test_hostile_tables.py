"""Hostile CSV and text uploads: refused with a message naming the row, column or limit; nothing written."""
from __future__ import annotations

import random

import pytest

import dlcore
from dlcore import DataError


def rows(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


GOOD = rows("a,b,label", "1,2,x", "3,4,y", "5,6,x", "7,8,y", "9,1,x", "2,3,y")


def test_a_good_table_imports(sandbox):
    info = dlcore.import_table_csv(GOOD, name="t")
    assert info.input_shape == (2,) and info.class_names == ("x", "y")
    info = dlcore.import_table_csv("ä,ö,ß\n1,2,α\n3,4,β\n5,6,α\n7,8,β\n".encode("utf-8-sig"), name="unicode")
    assert info.class_names == ("α", "β") and info.features == ("ä", "ö")
    info = dlcore.import_text_csv(rows("text,label", "so good,pos", "so bad,neg", "fine,pos", "awful,neg"), name="tx")
    assert info.task == "sequence-classification" and info.class_names == ("neg", "pos")
    info = dlcore.import_text_corpus(("hello world, ünïcødé text. " * 40).encode(), name="corpus", window=16)
    assert info.task == "char-lm" and "ü" in info.vocab
    assert len(dlcore.load_dataset(dlcore.DataSpec(name=info.name)).train[0]) > 0


def _cjk_corpus(n: int) -> bytes:
    rng = random.Random(0)
    return "".join(chr(0x4E00 + rng.randrange(n)) for _ in range(20 * n)).encode()


TABLE_CASES = {
    "empty": (b"", {}, r"CSV file is empty"),
    "only-blank-lines": (b"\n\n\n", {}, r"CSV is empty"),
    "header-only": (rows("a,b,label"), {}, r"0 data rows"),
    "too-few-rows": (rows("a,b,label", "1,2,x", "3,4,y"), {}, r"2 data rows; at least 4"),
    "missing-label-column": (GOOD, {"label_column": "target"}, r"no column named 'target'; columns are: a, b, label"),
    "one-column-semicolons": (rows("a;b;label", "1;2;x", "3;4;y", "5;6;x", "7;8;y"), {}, r"one column.*';'"),
    "non-numeric-feature": (rows("a,b,label", "1,2,x", "3,four,y", "5,6,x", "7,8,y"), {},
                            r"column 'b' is not numeric \(row 3 holds 'four'\)"),
    "nan-value": (rows("a,b,label", "1,2,x", "3,nan,y", "5,6,x", "7,8,y"), {}, r"NaN value in column 'b', row 3"),
    "empty-cell": (rows("a,b,label", "1,2,x", "3,4,y", ",6,x", "7,8,y"), {}, r"column 'a', row 4"),
    "inf-value": (rows("a,b,label", "1,2,x", "3,4,y", "5,inf,x", "7,8,y"), {}, r"infinite value in column 'b', row 4"),
    "minus-inf-value": (rows("a,b,label", "-inf,2,x", "3,4,y", "5,6,x", "7,8,y"), {}, r"infinite value in column 'a', row 2"),
    "overflowing-number": (rows("a,b,label", "1,2,x", "3,4,y", "5,6,x", "1e400,8,y"), {}, r"infinite value.*row 5"),
    "ragged-long-row": (rows("a,b,label", "1,2,x", "3,4,y,extra", "5,6,x", "7,8,y"), {},
                        r"line 3 has 4 values but the header has 3"),
    "ragged-short-row": (rows("a,b,label", "1,2,x", "3,4,y", "5,x", "7,8,y"), {}, r"line 4 has 2 values"),
    "unclosed-quote": (rows("a,b,label", '1,2,"x', "3,4,y", "5,6,x", "7,8,y"), {}, r"uneven|cannot be parsed"),
    "giant-cell": (rows("a,b,label", "1,2," + "x" * 200_000, "3,4,y", "5,6,x", "7,8,y"), {}, r"cannot be parsed"),
    "single-class": (rows("a,b,label", "1,2,x", "3,4,x", "5,6,x", "7,8,x"), {}, r"single class \('x'\)"),
    "label-is-a-number": (rows("a,b", *[f"{i},{i * 0.37}" for i in range(60)]), {}, r"60 different values in 60 rows"),
    "class-with-one-row": (rows("a,b,label", "1,2,x", "3,4,y", "5,6,x", "7,8,y", "9,9,z"), {}, r"class 'z'.*1 row"),
    "empty-labels": (rows("a,b,label", "1,2,x", "3,4,", "5,6,x", "7,8,y"), {}, r"label column 'label' has 1 empty cell"),
    "utf16": ("a,b,label\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n".encode("utf-16"), {}, r"not UTF-8.*UTF-16"),
    "latin1": ("a,b,label\n1,2,café\n3,4,y\n5,6,x\n7,8,y\n".encode("latin-1"), {}, r"not UTF-8 text: byte 17 is 0xe9"),
    "binary-png": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)), {}, r"not UTF-8"),
    "nul-bytes": (b"a,b,label\n1,2,x\n3,\x00,y\n5,6,x\n7,8,y\n", {}, r"NUL bytes"),
    "million-columns": ((",".join(f"c{i}" for i in range(1_000_000)) + "\n1\n").encode(), {},
                        r"1,000,000 columns; the limit is 10,000"),
}


@pytest.mark.parametrize("case", list(TABLE_CASES))
def test_hostile_table_is_refused(case, refuses):
    data, kw, pattern = TABLE_CASES[case]
    refuses(DataError, lambda: dlcore.import_table_csv(data, **kw), pattern)


TEXT_CSV_CASES = {
    "no-label-column": (rows("text,score", "good,1", "bad,2", "ok,3", "meh,4"), r"columns named 'text' and 'label'"),
    "all-texts-empty": (rows("text,label", ",a", ",b", ",a", ",b"), r"every 'text' cell is empty"),
    "huge-vocabulary": (b"text,label\n" + b"\n".join(_cjk_corpus(6000)[i: i + 3000] + (b",a" if i % 2 else b",b")
                                                    for i in range(0, 6 * 3000 * 20, 3000)), r"distinct characters"),
    "binary": (random.Random(1).randbytes(4000), r"not UTF-8"),
}


@pytest.mark.parametrize("case", list(TEXT_CSV_CASES))
def test_hostile_text_csv_is_refused(case, refuses):
    data, pattern = TEXT_CSV_CASES[case]
    refuses(DataError, lambda: dlcore.import_text_csv(data), pattern)


CORPUS_CASES = {
    "binary-bytes": (random.Random(2).randbytes(4000), {}, r"not UTF-8.*binary"),
    "utf16-text": (("hello world " * 100).encode("utf-16"), {}, r"UTF-16"),
    "nul-padded": (b"hello\x00world" * 100, {}, r"NUL bytes"),
    "too-short": (b"tiny", {}, r"4 characters; a character model needs at least 256"),
    "huge-vocabulary": (_cjk_corpus(6000), {}, r"6,000 distinct characters"),
    "window-zero": (b"abc" * 500, {"window": 0}, r"window must be a whole number 2\.\.1024"),
    "window-huge": (b"abc" * 500, {"window": 10**9}, r"window must be"),
    "window-text": (b"abc" * 500, {"window": "64"}, r"window must be"),
}


@pytest.mark.parametrize("case", list(CORPUS_CASES))
def test_hostile_corpus_is_refused(case, refuses):
    data, kw, pattern = CORPUS_CASES[case]
    refuses(DataError, lambda: dlcore.import_text_corpus(data, **kw), pattern)


# ------------------------------------------------------------------ limits, each from its env variable
def test_csv_row_limit(refuses, monkeypatch):
    monkeypatch.setenv("DLE_MAX_CSV_ROWS", "10")
    refuses(DataError, lambda: dlcore.import_table_csv(rows("a,label", *[f"{i},{i % 2}" for i in range(20)])),
            r"more than 10 rows.*DLE_MAX_CSV_ROWS")


def test_csv_column_limit(refuses, monkeypatch):
    monkeypatch.setenv("DLE_MAX_CSV_COLUMNS", "3")
    refuses(DataError, lambda: dlcore.import_table_csv(rows("a,b,c,label", "1,2,3,x")), r"4 columns; the limit is 3")


def test_text_char_limit(refuses, monkeypatch):
    monkeypatch.setenv("DLE_MAX_TEXT_CHARS", "100")
    refuses(DataError, lambda: dlcore.import_text_corpus(b"abcd" * 100), r"400 characters; the limit is 100")


def test_seq_len_limit_on_corpus_window(refuses, monkeypatch):
    monkeypatch.setenv("DLE_MAX_SEQ_LEN", "16")
    refuses(DataError, lambda: dlcore.import_text_corpus(b"abcd" * 400, window=32), r"window must be .*2\.\.16")


def test_csv_upload_size_limit(refuses, monkeypatch):
    monkeypatch.setenv("DLE_MAX_UPLOAD_MB", "0.0001")
    refuses(DataError, lambda: dlcore.import_table_csv(GOOD * 10), r"CSV file is .* MB; the limit")


def test_seq_len_limit_at_start_run(refuses, monkeypatch):
    """A run whose sequences exceed DLE_MAX_SEQ_LEN is refused before anything is queued."""
    monkeypatch.setenv("DLE_MAX_SEQ_LEN", "16")
    from dlcore import SpecError

    store = dlcore.RunStore()
    msg = refuses(SpecError, lambda: dlcore.start_run(dlcore.DataSpec(name="reverse", seq_len=32),
                                                      dlcore.get_preset("transformer-tiny"), dlcore.TrainSpec(),
                                                      store=store), r"sequence length is 32.*at most 16.*seq_len")
    assert store.list() == [], msg
    # within the limit the same run is accepted (its worker is not started: only the check is under test)
    import dlcore.train.jobs as jobs

    monkeypatch.setattr(jobs, "_spawn", lambda *a, **k: None)
    monkeypatch.setenv("DLE_MAX_SEQ_LEN", "64")
    run_id = dlcore.start_run(dlcore.DataSpec(name="reverse", seq_len=32), dlcore.get_preset("transformer-tiny"),
                              dlcore.TrainSpec(epochs=1), store=store)
    assert store.get(run_id).status == "queued"


def test_limits_are_read_when_used(monkeypatch):
    """One place, read at call time: each limit follows its env variable; a typo falls back with a warning."""
    rows_ = {r["name"]: r for r in dlcore.LIMITS.describe()}
    assert set(rows_) == {"upload_bytes", "unzipped_bytes", "zip_files", "image_pixels", "csv_columns", "csv_rows",
                          "text_chars", "seq_len", "concurrent_runs", "zip_pixels", "dataset_bytes", "snapshot_bytes"}
    for name, row in rows_.items():
        monkeypatch.setenv(row["env"], "3")
        assert getattr(dlcore.LIMITS, name) == (3 * 2**20 if row["unit"] == "MB" else 3)
        monkeypatch.setenv(row["env"], "-1")
        with pytest.warns(RuntimeWarning, match=row["env"]):
            assert getattr(dlcore.LIMITS, name) == int(row["default"] * (2**20 if row["unit"] == "MB" else 1))
        monkeypatch.delenv(row["env"])
