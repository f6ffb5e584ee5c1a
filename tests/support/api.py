"""What the API's tests share: the reads that need the token (issue 17 item 5)."""

from __future__ import annotations

import uuid

#: Every read of task data, workflow and job details, workers, queues, metrics and dead
#: letters: 401 without ``Authorization: Bearer $API_TOKEN``.
PROTECTED_READS = [
    "/tasks/0f8fad5b-d9cb-469f-a165-70867728950e",
    f"/workflows/{uuid.uuid4()}",
    f"/jobs/{uuid.uuid4()}",
    "/workers",
    "/queues",
    "/metrics",
    "/dead-letters",
]
