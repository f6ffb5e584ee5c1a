"""The demo's pattern table: a row is ``ok`` only when the value is the expected one."""

from __future__ import annotations

import io
from typing import Any

from celeryref.client.patterns import Pattern, report


def returns(value: Any) -> Any:
    return lambda timeout: value


def fails(timeout: float) -> Any:
    raise RuntimeError("chord body never ran")


def test_report_counts_wrong_values_and_failures_and_names_them() -> None:
    rows = [
        Pattern("right", "default", 400, lambda v: v, returns(400)),
        Pattern("wrong", "default", 285, lambda v: v, returns(284)),
        Pattern(
            "summary", "cpu_intensive", ("succeeded", True), tuple, returns(["succeeded", True])
        ),
        Pattern("broken", "default", 1, lambda v: v, fails),
    ]
    out = io.StringIO()

    assert report(rows, 1.0, out) == 2
    lines = {line.split()[0]: line for line in out.getvalue().splitlines()[1:]}
    assert " ok " in lines["right"] and "400" in lines["right"]
    assert " WRONG " in lines["wrong"] and "284, expected 285" in lines["wrong"]
    assert " ok " in lines["summary"]
    assert " WRONG " in lines["broken"] and "chord body never ran" in lines["broken"]
