"""Answers unchanged: the golden requests replayed on the committed model folders give the recorded
answers (same items in the same order, scores within 1e-6). `tests/golden/build.py` records them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from golden.build import replay

GOLDEN = Path(__file__).resolve().parent / "golden"
RECORDED = json.loads((GOLDEN / "answers.json").read_text())
#: Scores are answered to 6 decimals: one unit of the last, and a hair for rounding on either side.
TOLERANCE = 1e-6 + 1e-9


def same_list(expected: list[dict], got: list[dict], where: str) -> None:
    """Same items in the same order (items whose scores tie within `TOLERANCE` may swap), each with
    the same fields, and each score within `TOLERANCE`."""
    assert len(got) == len(expected), f"{where}: {len(got)} items, recorded {len(expected)}"
    for position, (want, have) in enumerate(zip(expected, got, strict=True)):
        if want["score"] is None or have["score"] is None:
            assert want["score"] == have["score"], f"{where} #{position + 1}: score {have['score']} != {want['score']}"
        else:
            assert abs(want["score"] - have["score"]) <= TOLERANCE, f"{where} #{position + 1}: {have} != {want}"
        if have["item_id"] != want["item_id"]:
            tied = {
                e["item_id"]
                for e in expected
                if e["score"] is not None and abs(e["score"] - want["score"]) <= TOLERANCE
            }
            assert have["item_id"] in tied, f"{where} #{position + 1}: {have['item_id']} where {want['item_id']} was"
            continue
        fields = {key: value for key, value in want.items() if key != "score"}
        assert {key: have.get(key) for key in fields} == fields, f"{where} #{position + 1}"


@pytest.mark.parametrize("model", sorted(RECORDED))
def test_the_golden_requests_get_the_recorded_answers(model, tmp_path):
    answers = replay(GOLDEN / "models" / model, tmp_path)
    recorded = RECORDED[model]
    assert [a["name"] for a in answers] == [r["name"] for r in recorded]
    for want, have in zip(recorded, answers, strict=True):
        where = f"{model}: {want['name']}"
        assert have["status"] == want["status"], f"{where}: {have['body']}"
        if isinstance(want["body"], dict) and "items" in want["body"]:
            same_list(want["body"]["items"], have["body"]["items"], where)
            # every field recorded is answered alike (a field added since may stand beside them)
            recorded_fields = [k for k in want["body"] if k not in ("items", "model_version")]
            assert {k: have["body"].get(k) for k in recorded_fields} == {k: want["body"][k] for k in recorded_fields}
        else:
            assert have["body"] == want["body"], where
