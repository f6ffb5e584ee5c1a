"""Pure functions behind the domain tasks: records, follow-ups, users, mail (images:
test_imaging.py)."""

from __future__ import annotations

import math

import pytest

from celeryref.adapters import smtp
from celeryref.domain import data_processing as records
from celeryref.domain import notifications as mail
from celeryref.domain.follow_ups import Thresholds, decide, enabled
from celeryref.errors import InvalidArguments
from celeryref.tasks.default import users
from celeryref.tasks.io_intensive.email import brief


def test_validate_sorts_records_and_says_why() -> None:
    """Valid records are kept; each rejected one carries its index and reason."""
    valid, rejected = records.validate(
        [
            {"id": 1, "name": "a", "value": 1},
            {"id": 2, "name": "b"},
            {"id": 3, "name": "c", "value": math.inf},
            "text",
        ]
    )
    assert [r["id"] for r in valid] == [1]
    assert rejected == [
        {"index": 1, "reason": "missing value"},
        {"index": 2, "reason": "value must be a finite number, got inf"},
        {"index": 3, "reason": "not an object: str"},
    ]


def test_clean_transform_analyze() -> None:
    """Clean collapses whitespace and drops duplicate ids; transform normalizes 0..1;
    analyze gives the statistics per category."""
    cleaned = records.clean(
        [
            {"id": 1, "name": "  a   b ", "value": 2, "category": "X"},
            {"id": 1, "name": "dup", "value": 9},
            {"id": 2, "name": "c", "value": 4},
        ]
    )
    assert cleaned == [
        {"id": 1, "name": "a b", "value": 2, "category": "x"},
        {"id": 2, "name": "c", "value": 4, "category": "uncategorized"},
    ]
    assert [r["normalized"] for r in records.transform(cleaned)] == [0.0, 1.0]
    analysis = records.analyze(cleaned)
    assert analysis["count"] == 2 and analysis["mean"] == 3.0 and analysis["stdev"] == 1.0
    assert analysis["categories"]["x"] == {"count": 1, "sum": 2.0}
    assert records.analyze([])["mean"] is None


def test_render_report_lists_statistics_and_categories() -> None:
    """The report shows the title, the statistics and one table row per category."""
    text = records.render_report("T", records.analyze([{"value": 1, "category": "k"}]), ["n"])
    assert text.startswith("# T\n") and "| k | 1 | 1.0 |" in text and "> n" in text


def test_follow_ups_follow_the_conditions() -> None:
    """Too many invalid records -> quality alert; enough valid -> report; high max -> alert."""
    thresholds = Thresholds(max_invalid_ratio=0.2, min_records_for_report=3, high_value=100)
    assert [n for n, _ in decide(8, 2, {"max": 50}, thresholds)] == ["report"]
    assert [n for n, _ in decide(2, 2, {"max": 100}, thresholds)] == [
        "quality_alert",
        "high_value_alert",
    ]
    only = enabled(["report"])
    assert [n for n, _ in decide(8, 8, {"max": 500}, thresholds, only)] == ["report"]


def test_follow_ups_outside_the_allowlist_are_refused() -> None:
    """A message can restrict follow-ups but never name a task to run."""
    with pytest.raises(InvalidArguments, match="unknown follow-ups"):
        enabled(["celeryref.tasks.default.add"])
    with pytest.raises(InvalidArguments, match="unknown thresholds"):
        Thresholds.from_dict({"eval": "1"})
    with pytest.raises(InvalidArguments, match="finite number"):
        Thresholds.from_dict({"high_value": "9"})


def test_user_batches_and_argument_checks() -> None:
    """Ids are de-duplicated and split into batches; bad actions and ids are refused."""
    ids = users.check("activate", [5, 1, 3, 1], 2)
    assert users.batches(ids, 2) == [[1, 3], [5]]
    with pytest.raises(InvalidArguments, match="action must be one of"):
        users.check("drop_table", [1])
    with pytest.raises(InvalidArguments, match="positive integers"):
        users.check("delete", [1, "2"])


def test_mail_arguments_are_checked_and_headers_cannot_be_injected() -> None:
    """Bad addresses are refused; a newline in the subject does not become a header."""
    with pytest.raises(InvalidArguments, match="not an e-mail address"):
        mail.check_message(["nobody"], "s", "b")
    message = smtp.build("a@x", ["b@y"], "hello\nBcc: evil@z", "body")
    assert message["Subject"] == "hello Bcc: evil@z" and message["Bcc"] is None


def test_brief_shortens_long_lists() -> None:
    """Summaries in e-mails show long lists as their length."""
    assert brief({"records": list(range(9)), "n": [1]}) == {"records": "<9 items>", "n": [1]}
