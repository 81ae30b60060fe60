import json

import pytest

from shelfwise.cli import main
from shelfwise.data.dataset import Dataset

HEADER = "user_id,item_id,event_type,timestamp\n"


def write(path, body: bytes) -> None:
    path.write_bytes(body)


@pytest.fixture
def files(tmp_path):
    events = tmp_path / "events.csv"
    write(events, (HEADER + "u1,a,view,2024-01-01\nu1,b,purchase,2024-01-02\nu2,a,cart,2024-01-03\n").encode())
    items = tmp_path / "items.csv"
    write(items, b"item_id,title,price\na,Mug,3.5\nb,Teapot,20\nc,Knife,30\n")
    return events, items


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"u3,c,view\n", "line 3: wrong column count: expected 4"),
        (b"u3,c,view,31/02/2024 25:61\n", "line 3, column 'timestamp': unparseable time"),
        (b"u3,\xc3\x28,view,2024-01-05\n", "line 3: invalid UTF-8"),
        (b",c,view,2024-01-05\n", "line 3, column 'user_id': missing user_id"),
    ],
)
def test_malformed_events_fail_with_line_and_column(tmp_path, capsys, line, expected):
    events = tmp_path / "events.csv"
    write(events, HEADER.encode() + b"u1,a,view,2024-01-01\n" + line)
    code = main(["ingest", "--events", str(events), "--out", str(tmp_path / "ds")])
    assert code == 1
    err = capsys.readouterr().err
    assert expected in err.replace("\n", " ") or expected in err
    assert not (tmp_path / "ds").exists()


def test_missing_column_and_negative_price(tmp_path, capsys, files):
    events, _ = files
    bad_events = tmp_path / "bad.csv"
    write(bad_events, b"user_id,item_id\nu1,a\n")
    assert main(["ingest", "--events", str(bad_events), "--out", str(tmp_path / "ds")]) == 2
    assert "required column(s) ['timestamp'] are missing" in capsys.readouterr().err
    items = tmp_path / "items.csv"
    write(items, b"item_id,price\na,-1\n")
    assert main(["ingest", "--events", str(events), "--items", str(items), "--out", str(tmp_path / "ds")]) == 1
    assert "line 2, column 'price': negative price -1" in capsys.readouterr().err


def test_skip_invalid_loads_good_rows_and_quarantines_bad(tmp_path, capsys):
    events = tmp_path / "events.csv"
    write(
        events,
        HEADER.encode() + b"u1,a,view,2024-01-01\nu2,b,teleport,2024-01-02\nu3,\xff,view,x\nu4,c,purchase,2024-01-04\n",
    )
    out = tmp_path / "ds"
    assert main(["ingest", "--events", str(events), "--out", str(out), "--skip-invalid"]) == 0
    dataset = Dataset.load(out)
    assert sorted(dataset.user_ids) == ["u1", "u4"]
    quarantine = [json.loads(line) for line in (tmp_path / "ds.quarantine.jsonl").read_text().splitlines()]
    assert [(q["line"], q["problems"][0]["column"]) for q in quarantine] == [(3, "event_type"), (4, None)]
    assert quarantine[0]["row"]["event_type"] == "teleport"
    assert "2 rejected row(s)" in capsys.readouterr().err


def test_failed_ingest_keeps_the_previous_data_set(tmp_path, files):
    events, items = files
    out = tmp_path / "ds"
    assert main(["ingest", "--events", str(events), "--items", str(items), "--out", str(out)]) == 0
    before = Dataset.load(out)
    bad = tmp_path / "bad.csv"
    write(bad, (HEADER + "u9,z,view,not a time\n").encode())
    assert main(["ingest", "--events", str(bad), "--out", str(out)]) == 1
    after = Dataset.load(out)
    assert after.n_interactions == before.n_interactions == 3
    assert after.n_items == 3  # the catalog item without events is kept for cold start


def test_append_keeps_what_was_accepted_before(tmp_path, files):
    events, items = files
    out = tmp_path / "ds"
    assert main(["ingest", "--events", str(events), "--items", str(items), "--out", str(out)]) == 0
    more = tmp_path / "more.csv"
    write(more, (HEADER + "u3,c,purchase,2024-02-01\nu1,a,view,2024-01-01\n").encode())
    assert main(["ingest", "--events", str(more), "--out", str(out), "--append"]) == 0
    dataset = Dataset.load(out)
    assert dataset.n_interactions == 4  # the repeat of (u1, a, view, 2024-01-01) is a duplicate
    assert sorted(dataset.user_ids) == ["u1", "u2", "u3"]
    assert dataset.items.set_index("item_id").loc["b", "title"] == "Teapot"


def test_column_mapping_and_weights_from_the_command_line(tmp_path):
    events = tmp_path / "log.tsv"
    write(events, b"customer\tproduct\tts\nc1\tp1\t1704067200\nc1\tp2\t1704153600\n")
    out = tmp_path / "ds"
    code = main(
        [
            "ingest",
            "--events",
            str(events),
            "--out",
            str(out),
            "--map",
            "user_id=customer",
            "--map",
            "item_id=product,timestamp=ts",
            "--event-type",
            "view",
            "--event-weight",
            "view=0.5",
        ]
    )
    assert code == 0
    dataset = Dataset.load(out)
    assert dataset.event_weights["view"] == 0.5
    assert dataset.user_items().toarray().tolist() == [[0.5, 0.5]]
    assert main(["ingest", "--events", str(events), "--out", str(out), "--map", "user_id"]) == 2
