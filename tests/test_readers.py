import gzip
import json

import pandas as pd
import pytest

from shelfwise.data.readers import parse_timestamps, read_events, read_items
from shelfwise.errors import ConfigError, DataFormatError, ValidationError

GOOD_CSV = (
    "user,sku,kind,when,qty\n"
    "u1,a,purchase,2024-01-01T10:00:00Z,2\n"
    "u1,b,add_to_cart,1704103200,\n"
    "u2,a,view,2024-01-02 11:00,\n"
)
MAPPING = {"user_id": "user", "item_id": "sku", "event_type": "kind", "timestamp": "when", "value": "qty"}


def test_csv_with_mapping_and_aliases(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(GOOD_CSV)
    result = read_events(path, columns=MAPPING)
    assert result.report.ok
    frame = result.frame
    assert frame["user_id"].tolist() == ["u1", "u1", "u2"]
    assert frame["event_type"].tolist() == ["purchase", "cart", "view"]
    assert frame["timestamp"].iloc[1] == pd.Timestamp("2024-01-01 10:00:00", tz="UTC")
    assert frame["value"].iloc[0] == 2.0 and pd.isna(frame["value"].iloc[1])


def test_tsv_gzip_jsonl_and_parquet_give_the_same_rows(tmp_path):
    csv_path = tmp_path / "events.csv"
    csv_path.write_text(GOOD_CSV)
    expected = read_events(csv_path, columns=MAPPING).frame
    tsv_path = tmp_path / "events.tsv.gz"
    with gzip.open(tsv_path, "wt") as handle:
        handle.write(GOOD_CSV.replace(",", "\t"))
    pd.testing.assert_frame_equal(read_events(tsv_path, columns=MAPPING).frame, expected)
    jsonl_path = tmp_path / "events.jsonl"
    raw = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    jsonl_path.write_text("\n".join(json.dumps(r) for r in raw.to_dict("records")))
    pd.testing.assert_frame_equal(read_events(jsonl_path, columns=MAPPING).frame, expected)
    parquet_path = tmp_path / "events.parquet"
    raw.to_parquet(parquet_path)
    pd.testing.assert_frame_equal(read_events(parquet_path, columns=MAPPING).frame, expected)


def test_every_bad_row_is_reported_with_line_and_column(tmp_path):
    path = tmp_path / "events.csv"
    path.write_bytes(
        b"user_id,item_id,event_type,timestamp\n"
        b"u1,a,view,2024-01-01\n"
        b",b,view,2024-01-01\n"  # line 3: missing user
        b"u2,c,teleport,2024-01-01\n"  # line 4: unknown type
        b"u3,d,view,yesterday-ish\n"  # line 5: bad time
        b"u4,e,view\n"  # line 6: truncated
        b"u5,\xff\xfe,view,2024-01-01\n"  # line 7: invalid UTF-8
        b"u6,f,view,2024-01-03\n"
    )
    result = read_events(path)
    problems = {(e.line, e.column): e.reason for e in result.report.errors}
    assert problems[(3, "user_id")] == "missing user_id"
    assert "unknown event type 'teleport'" in problems[(4, "event_type")]
    assert "unparseable time 'yesterday-ish'" in problems[(5, "timestamp")]
    assert "wrong column count: expected 4" in problems[(6, None)]
    assert "invalid UTF-8" in problems[(7, None)]
    assert result.frame["user_id"].tolist() == ["u1", "u6"]
    assert result.report.rows_rejected == 5
    with pytest.raises(ValidationError) as info:
        result.report.raise_if_errors()
    message = str(info.value)
    assert (
        f"{path}, line 4, column 'event_type': unknown event type" in message
        and "5 problem(s) in 5 of 7 rows" in message
    )


def test_missing_required_column_names_it(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id\nu1,a\n")
    with pytest.raises(DataFormatError, match=r"required column\(s\) \['timestamp'\] are missing"):
        read_events(path)


def test_mapping_must_name_real_fields_and_columns(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(GOOD_CSV)
    with pytest.raises(ConfigError, match="unknown field"):
        read_events(path, columns={"shopper": "user"})
    with pytest.raises(DataFormatError, match=r"\['customer'\] named in the column mapping"):
        read_events(path, columns={"user_id": "customer"})


def test_unknown_format_and_missing_file(tmp_path):
    (tmp_path / "x.xlsx").write_text("")
    with pytest.raises(DataFormatError, match="pass --format"):
        read_events(tmp_path / "x.xlsx")
    with pytest.raises(FileNotFoundError):
        read_events(tmp_path / "nope.csv")


def test_items_are_cleaned_and_validated(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text(
        "item_id,title,description,category,price,tags,in_stock,created_at\n"
        'a,"Mug &amp; Saucer","<p>Fine   <b>bone</b> china</p>",Home>Kitchen >Mugs,12.5,"blue|gift",yes,2024-01-01\n'
        "b,Knife,,Home > Kitchen,-3,,no,\n"
        "c,Pan,,,abc,,maybe,someday\n"
        "a,Mug and Saucer,,,13,,true,\n"
    )
    result = read_items(path)
    problems = {(e.line, e.column): e.reason for e in result.report.errors}
    assert problems[(3, "price")] == "negative price -3 (prices must be >= 0)"
    assert problems[(4, "price")] == "price 'abc' is not a number"
    assert "is not a boolean" in problems[(4, "in_stock")]
    assert "unparseable time 'someday'" in problems[(4, "created_at")]
    items = result.frame.set_index("item_id")
    assert list(items.index) == ["a"]  # b and c rejected; the later row of a wins
    assert items.loc["a", "title"] == "Mug and Saucer"
    assert result.report.merged_duplicates == 1


def test_item_text_cleaning(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text(
        json.dumps(
            {
                "item_id": 7,
                "title": " Tea&nbsp;&amp;&amp;  Co ",
                "description": "<div>Loose<br/>leaf</div>",
                "category": "Food>Tea",
                "tags": ["green", " loose "],
                "price": 4,
            }
        )
        + "\n"
    )
    item = read_items(path).frame.iloc[0]
    assert item["item_id"] == "7"
    assert item["title"] == "Tea && Co"
    assert item["description"] == "Loose leaf"
    assert item["category"] == "Food > Tea"
    assert item["tags"] == ["green", "loose"]


def test_parse_timestamps_handles_units_and_formats():
    values = pd.Series(["2024-03-01T12:00:00+01:00", "1709294400", "1709294400000", "bad", None])
    parsed = parse_timestamps(values)
    assert parsed.iloc[0] == pd.Timestamp("2024-03-01 11:00", tz="UTC")
    assert parsed.iloc[1] == parsed.iloc[2] == pd.Timestamp("2024-03-01 12:00", tz="UTC")
    assert parsed.iloc[3:].isna().all()
