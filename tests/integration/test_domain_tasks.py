"""The guide's domain tasks on real workers: datasets, e-mail, reports, users,
conditional processing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from psycopg2.extras import execute_values

from celeryref.adapters import db
from celeryref.celery_app import app
from celeryref.domain import datasets
from celeryref.errors import UpstreamUnavailable
from celeryref.reliability.retry import RetryPolicy
from celeryref.tasks.cpu_intensive import datasets as dataset_tasks
from celeryref.tasks.cpu_intensive import reports
from celeryref.tasks.default import conditional, users
from celeryref.tasks.io_intensive import email
from tests.conftest import wait_for
from tests.integration import wf_support
from tests.integration.test_mailsink import free_port
from tests.integration.wf_support import WORK_QUEUES, Sink, mails_to

domain_tables = wf_support.domain_tables
smtp_sink = wf_support.smtp_sink
start_sink = wf_support.start_sink

TIMEOUT = 30


def record_progress(monkeypatch: pytest.MonkeyPatch, module: Any) -> list[dict[str, Any]]:
    """Every progress meta ``module`` reports, in order (the worker runs in this process)."""
    seen: list[dict[str, Any]] = []
    original = module.progress_meta

    def recording(*args: Any, **kwargs: Any) -> dict[str, Any]:
        meta: dict[str, Any] = original(*args, **kwargs)
        seen.append(meta)
        return meta

    monkeypatch.setattr(module, "progress_meta", recording)
    return seen


def test_process_large_dataset_pages_through_postgres_with_progress(
    worker: Any, domain_tables: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1 000 records (every 10th invalid) in pages of 300: four progress reports, the
    complete counts, and the result stored in dataset_results."""
    rows = [
        {"id": i, "name": f"n{i}", "value": i % 7} if i % 10 else {"id": i, "name": f"n{i}"}
        for i in range(1, 1001)
    ]
    datasets.add_records("sales", rows)
    progress = record_progress(monkeypatch, dataset_tasks)
    with worker(*WORK_QUEUES, pool="threads", concurrency=2):
        result = dataset_tasks.process_large_dataset.delay("sales", {"batch_size": 300})
        summary = result.get(timeout=TIMEOUT)

    assert [p["current"] for p in progress] == [300, 600, 900, 1000]
    assert progress[-1]["status"] == "1000 of 1000 records"
    assert (summary["processed"], summary["valid"], summary["rejected"]) == (1000, 900, 100)
    assert len(summary["rejections"]) == dataset_tasks.MAX_REPORTED_REJECTIONS
    assert summary["analysis"]["count"] == 900
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT dataset, task_id, result->'valid' FROM dataset_results")
        assert cur.fetchall() == [("sales", result.id, 900)]


def test_notification_email_arrives_and_is_logged(
    worker: Any, domain_tables: None, smtp_sink: Sink
) -> None:
    """send_notification delivers over real SMTP to the sink and logs 'sent'."""
    with worker(*WORK_QUEUES, pool="threads", concurrency=2):
        result = email.send_notification.delay(["team@example.com"], "Nightly run", "All good.")
        sent = result.get(timeout=TIMEOUT)
        [mail] = wait_for(mails_to(smtp_sink, "team@example.com"), 20, "the notification")

    assert sent["sent"] is True
    assert (mail["subject"], mail["body"]) == ("Nightly run", "All good.\n")
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT task_id, status, error, attempts FROM email_logs")
        assert cur.fetchall() == [(result.id, "sent", None, 1)]


def test_a_failed_notification_is_logged_with_its_error(
    worker: Any, domain_tables: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody listens on the SMTP port: two attempts, the task fails, the log row says
    'failed' with the connection error."""
    from celeryref.settings import settings

    local = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": free_port()})
    monkeypatch.setattr(email, "settings", local)
    fast = RetryPolicy(max_retries=1, base_delay=0.05, max_delay=0.1)
    monkeypatch.setattr(email.send_notification, "retry_policy", fast)
    with worker(*WORK_QUEUES, pool="threads", concurrency=2):
        result = email.send_notification.delay(["team@example.com"], "s", "b")
        with pytest.raises(UpstreamUnavailable):
            result.get(timeout=TIMEOUT)

    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT status, error, attempts FROM email_logs")
        [(state, error, attempts)] = cur.fetchall()
    assert (state, attempts) == ("failed", 2)
    assert "ConnectionRefusedError" in error


def test_generate_report_reports_each_phase_and_writes_the_file(
    worker: Any, domain_tables: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five PROGRESS phases in order, then the report file in REPORT_DIR."""
    progress = record_progress(monkeypatch, reports)
    inline = [{"id": 1, "name": "a", "value": 2}, {"id": 2, "name": "b"}]
    with worker(*WORK_QUEUES, pool="threads", concurrency=2):
        result = reports.generate_report.delay(records=inline, title="Weekly")
        written = result.get(timeout=TIMEOUT)

    assert [p["status"].split(" ")[0] for p in progress] == list(reports.PHASES)
    path = Path(written["path"])
    assert path.name == f"report-{result.id}.md"
    assert path.read_text().startswith("# Weekly\n")
    assert "> 1 of 2 records rejected" in path.read_text()


def add_users(count: int) -> None:
    with db.connection() as conn, conn.cursor() as cur:
        execute_values(
            cur,
            "INSERT INTO users (email, status) VALUES %s",
            [(f"u{i}@example.com", "active") for i in range(1, count + 1)],
        )


def user_rows() -> dict[int, str]:
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT id, status FROM users ORDER BY id")
        return dict(cur.fetchall())


def test_batch_process_users_changes_exactly_the_targeted_rows(
    worker: Any, domain_tables: None
) -> None:
    """Deactivate five ids (one unknown) in batches of two: three batches, four rows
    changed, every other row untouched; then delete two."""
    add_users(10)
    with worker(*WORK_QUEUES, pool="threads", concurrency=4):
        summary = users.batch_process_users.delay("deactivate", [2, 3, 5, 7, 99], 2).get(
            timeout=TIMEOUT
        )
        assert summary == {"action": "deactivate", "batches": 3, "requested": 5, "changed": 4}
        rows = user_rows()
        assert {i for i, s in rows.items() if s == "inactive"} == {2, 3, 5, 7}
        deleted = users.batch_process_users.delay("delete", [1, 2], 1).get(timeout=TIMEOUT)

    assert deleted["changed"] == 2
    assert set(user_rows()) == set(range(3, 11))


def test_conditional_processing_dispatches_only_allowlisted_follow_ups(
    worker: Any, domain_tables: None
) -> None:
    """A dataset with a value above the threshold and no recipients: the report is
    dispatched and runs; the alerts are decided but not sent (nobody to tell)."""
    datasets.add_records("orders", [{"id": i, "name": "o", "value": i * 10} for i in range(5)])
    with worker(*WORK_QUEUES, pool="threads", concurrency=4):
        result = conditional.conditional_processing.delay(
            dataset="orders", thresholds={"high_value": 40}, notify=[]
        )
        outcome = result.get(timeout=TIMEOUT)
        [report, alert] = outcome["dispatched"]
        written = app.AsyncResult(report["task_id"]).get(timeout=TIMEOUT)

    assert (report["follow_up"], alert["follow_up"]) == ("report", "high_value_alert")
    assert alert["task_id"] is None
    assert Path(written["path"]).exists()
