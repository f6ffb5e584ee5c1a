"""Bench helpers: ``gaps.steps`` splits each gap between two tasks of one process into
its steps; ``sides.turns`` alternates the order of the sides per round."""

from __future__ import annotations

import pytest

from bench.gaps import steps


def _task(start: float, pid: float, **events: float) -> dict[str, float]:
    return {"start": start, "end": start + 1.0, "pid": pid, **events}


def test_steps_pair_consecutive_tasks_of_one_process_and_add_up_to_the_gap() -> None:
    tasks = {
        "a": _task(0.0, 1, done=1.1, succeeded=1.3, received=-0.5, started=-0.2),
        "b": _task(1.6, 1, done=2.7, succeeded=2.9, received=1.4, started=1.5),
        "c": _task(0.1, 2, done=1.2, succeeded=1.4, received=0.0, started=0.05),
    }
    found = steps(tasks)
    assert found["end -> date_done"] == [pytest.approx(0.1)]  # only a -> b: c is alone
    assert found["date_done -> task-succeeded"] == [pytest.approx(0.2)]
    assert found["task-succeeded -> next task-received"] == [pytest.approx(0.1)]
    assert found["task-received -> task-started"] == [pytest.approx(0.1)]
    assert found["task-started -> next start"] == [pytest.approx(0.1)]
    parts = [found[name][0] for name in found if not name.startswith("gap")]
    assert sum(parts) == pytest.approx(found["gap: end -> next start"][0]) == pytest.approx(0.6)


def test_a_pair_missing_a_stamp_is_left_out() -> None:
    tasks = {"a": _task(0.0, 1, done=1.1), "b": _task(1.6, 1, received=1.4, started=1.5)}
    assert all(seconds == [] for seconds in steps(tasks).values())


def test_turns_reverse_the_order_every_other_round() -> None:
    from bench.sides import turns

    assert list(turns(["a", "b", "c"], 3)) == ["a", "b", "c", "c", "b", "a", "a", "b", "c"]
