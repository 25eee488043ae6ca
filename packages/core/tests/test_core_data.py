from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from verticals.core.config import HeadConfig
from verticals.core.data import (
    DataError,
    load_labelled,
    load_pairs,
    read_table,
    split_indices,
    write_table,
)

HEADS = {
    "sentiment": HeadConfig(column="label", labels=["neg", "pos"]),
    "topic": HeadConfig(column="topic"),
}


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "body": [f"text number {i}" for i in range(20)],
            "label": ["neg", "pos"] * 10,
            "topic": ["a", "b", "c", "d"] * 5,
        }
    )


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_loads_every_format_with_column_mapping(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"data{suffix}"
    frame = _frame()
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    data = load_labelled(path, "body", HEADS)
    assert len(data) == 20
    assert data.texts[3] == "text number 3"
    assert [h.labels for h in data.heads] == [("neg", "pos"), ("a", "b", "c", "d")]
    assert data.targets["sentiment"][:4] == [0, 1, 0, 1]


def test_errors_name_file_row_and_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("body,label,topic\nfine,neg,a\n,pos,b\nok,maybe,c\n")
    with pytest.raises(DataError) as err:
        load_labelled(path, "body", HEADS)
    message = str(err.value)
    assert str(path) in message
    assert "row 2: missing text in column 'body'" in message
    assert "row 3: unknown label 'maybe' for head 'sentiment'" in message


def test_empty_file_missing_column_and_bad_encoding(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty file"):
        load_labelled(empty, "body", HEADS)
    header_only = tmp_path / "header.csv"
    header_only.write_text("body,label,topic\n")
    with pytest.raises(DataError, match="empty file"):
        load_labelled(header_only, "body", HEADS)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("text,label,topic\nhello,neg,a\n")
    with pytest.raises(DataError, match="missing column.*'body'.*the file has 'text'"):
        load_labelled(wrong, "body", HEADS)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("body,label,topic\ncaf\xe9 ok,neg,a\n".encode("latin-1"))
    with pytest.raises(DataError, match="bad encoding.*latin-1"):
        load_labelled(latin, "body", HEADS)
    assert load_labelled(latin, "body", HEADS, encoding="latin-1").texts == ["café ok"]


def test_bad_json_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"query": "a", "positive": "b"}\n{not json}\n')
    with pytest.raises(DataError, match="line 2: not valid JSON"):
        load_pairs(path, "query", "positive")


def test_multi_label_and_missing_labels(tmp_path: Path) -> None:
    path = tmp_path / "multi.csv"
    path.write_text("body,tags,sentiment\nx,a|b,neg\ny,b,\nz,,pos\n")
    heads = {
        "tags": HeadConfig(column="tags", multi_label=True),
        "sentiment": HeadConfig(column="sentiment", allow_missing=True),
    }
    data = load_labelled(path, "body", heads)
    assert data.targets["tags"] == [[0, 1], [1], []]
    assert data.targets["sentiment"] == [0, -1, 1]


def test_split_is_seeded_disjoint_and_stratified() -> None:
    strata = ["a"] * 70 + ["b"] * 30
    first = split_indices(100, 0.1, 0.2, seed=1, strata=strata)
    again = split_indices(100, 0.1, 0.2, seed=1, strata=strata)
    other = split_indices(100, 0.1, 0.2, seed=2, strata=strata)
    assert first == again
    assert first.test != other.test
    parts = [set(first.train), set(first.validation), set(first.test)]
    assert sum(map(len, parts)) == 100 and set.union(*parts) == set(range(100))
    assert len(first.test) == 20 and len(first.validation) == 10
    assert sum(strata[i] == "b" for i in first.test) == 6  # 30 % of the test split


def test_write_table_reads_back_whatever_the_cells_hold(tmp_path: Path) -> None:
    rows = [["a, with comma", 'a "quote"', 1], ["two\nlines", "", 0]]
    path = write_table(tmp_path / "new" / "rows.csv", ["query", "positive", "label"], rows)
    frame = read_table(path)
    assert list(frame.columns) == ["query", "positive", "label"]
    assert frame.astype(str).values.tolist() == [
        ["a, with comma", 'a "quote"', "1"],
        ["two\nlines", "", "0"],
    ]
