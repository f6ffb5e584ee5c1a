-- Tasks sent with a delay the broker cannot hold (F23): kept here instead of in Redis,
-- published by the beat-driven sweep (celeryref.tasks.scheduled.deferred) when due,
-- with their original task id. One row per (task id, retry number): sending the same
-- deferral twice (a redelivered task deferring its retry again) stores it once.
CREATE TABLE deferred_tasks (
    id           bigserial PRIMARY KEY,
    task_id      text        NOT NULL,
    retries      integer     NOT NULL DEFAULT 0,
    task_name    text        NOT NULL,
    args         jsonb       NOT NULL,
    kwargs       jsonb       NOT NULL,
    options      jsonb       NOT NULL,
    due_at       timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    -- Why the sweep could not publish it (a permanent error); NULL when published.
    error        text,
    UNIQUE (task_id, retries)
);
-- The sweep's question: what is unpublished and due soon.
CREATE INDEX deferred_tasks_due_idx ON deferred_tasks (due_at) WHERE published_at IS NULL;
