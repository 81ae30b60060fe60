import json
import os
import stat

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


ORDERS = (
    "customer,sku,qty,when\n"
    "c1,A,6,2024-01-01 10:00\n"
    "c1,A,4,2024-01-01 10:00\n"  # a second line of the same order with another quantity: summed
    "c1,B,2,2024-01-01 10:00\n"
    "c1,B,2,2024-01-01 10:00\n"  # identical in every column: a duplicate
    "c1,A,-10,2024-01-05 09:00\n"  # returns all ten: the purchase is taken back
    "c2,A,3,2024-01-02 12:00\n"
    "c2,A,-1,2024-01-03 12:00\n"  # returns one of three: two stay bought
    "c2,C,0,2024-01-02 12:00\n"  # zero quantity: rejected with its reason
    "c3,D,-2,2024-01-04 08:00\n"  # a return of something bought before the export began
    "c3,B,1,2024-01-04 08:00\n"
)


def table_text(printed: str) -> str:
    """The rows of a printed table as "name value" text."""
    return " ".join(printed.replace("│", " ").split())


ORDER_MAP = ["--map", "user_id=customer,item_id=sku,value=qty,timestamp=when"]


def test_an_order_export_with_returns_zero_quantities_and_repeated_lines(tmp_path, capsys):
    orders = tmp_path / "orders.csv"
    write(orders, ORDERS.encode())
    out = tmp_path / "shop"
    assert main(["ingest", "--events", str(orders), "--out", str(out), *ORDER_MAP]) == 1
    err = capsys.readouterr().err.replace("\n", " ")
    assert "line 9, column 'value': zero quantity" in err and "pass --skip-invalid" in err
    assert main(["ingest", "--events", str(orders), "--out", str(out), *ORDER_MAP, "--skip-invalid"]) == 0
    captured = capsys.readouterr()
    assert "pass --skip-invalid" not in captured.err and "quarantined" in captured.err
    report = table_text(captured.out)
    for line in (
        "duplicate rows dropped 1",
        "order lines summed 1",
        "returns 3",
        "purchases cancelled by returns 1",
        "purchases reduced by returns 1",
        "returns without a purchase 1",
    ):
        assert line in report
    dataset = Dataset.load(out)
    events, _ = dataset.to_frames()
    stored = sorted(zip(events["user_id"], events["item_id"], events["event_type"], events["value"], strict=True))
    assert stored == [("c1", "B", "purchase", 2.0), ("c2", "A", "purchase", 2.0), ("c3", "B", "purchase", 1.0)]


def test_returns_can_be_refused_and_appending_the_same_export_adds_nothing(tmp_path, capsys):
    orders = tmp_path / "orders.csv"
    write(orders, ORDERS.encode())
    out = tmp_path / "shop"
    args = ["ingest", "--events", str(orders), "--out", str(out), *ORDER_MAP, "--skip-invalid"]
    assert main([*args, "--returns", "reject"]) == 0
    quarantine = [json.loads(line) for line in (tmp_path / "shop.quarantine.jsonl").read_text().splitlines()]
    reasons = {q["line"]: q["problems"][0]["reason"] for q in quarantine}
    assert sorted(reasons) == [6, 8, 9, 10] and "return" in reasons[6] and "zero quantity" in reasons[9]
    events, _ = Dataset.load(out).to_frames()
    assert sorted(zip(events["user_id"], events["item_id"], events["value"], strict=True)) == [
        ("c1", "A", 10.0),
        ("c1", "B", 2.0),
        ("c2", "A", 3.0),
        ("c3", "B", 1.0),
    ]
    capsys.readouterr()
    assert main([*args, "--returns", "reject", "--append"]) == 0
    assert Dataset.load(out).n_interactions == 4
    assert "duplicate rows dropped 5" in table_text(capsys.readouterr().out)


def test_a_return_row_and_a_return_without_quantity_take_the_latest_purchase_back(tmp_path):
    events = tmp_path / "events.csv"
    write(
        events,
        (
            HEADER + "u1,a,purchase,2024-01-01\nu1,a,purchase,2024-01-03\nu1,a,refund,2024-01-04\n"
            "u1,b,purchase,2024-01-05\nu1,b,return,2024-01-04\n"  # returned before it was bought: no effect
        ).encode(),
    )
    out = tmp_path / "ds"
    assert main(["ingest", "--events", str(events), "--out", str(out)]) == 0
    frame, _ = Dataset.load(out).to_frames()
    assert sorted(zip(frame["item_id"], frame["timestamp"].dt.day, strict=True)) == [("a", 1), ("b", 5)]


def test_the_data_set_folder_follows_the_umask(tmp_path, files):
    events, _ = files
    old = os.umask(0o022)
    try:
        assert main(["ingest", "--events", str(events), "--out", str(tmp_path / "ds")]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "ds").stat().st_mode) == 0o755
