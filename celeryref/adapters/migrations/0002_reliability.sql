-- Reliability primitives: idempotency keys and the dead-letter store.

-- One row per idempotency key. The primary key is the mutual exclusion: of two
-- concurrent runs with one key exactly one inserts (or takes over an expired
-- lease); the other finds the row and waits for its result.
CREATE TABLE idempotency_keys (
    key           text PRIMARY KEY,
    task_name     text        NOT NULL,
    owner_task_id text        NOT NULL,
    state         text        NOT NULL CHECK (state IN ('running', 'succeeded')),
    result        jsonb,
    locked_until  timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz
);

-- Tasks that failed for good, with everything needed to inspect and replay them.
CREATE TABLE dead_letters (
    id              bigserial PRIMARY KEY,
    task_id         text        NOT NULL,
    task_name       text        NOT NULL,
    queue           text,
    args            jsonb       NOT NULL,
    kwargs          jsonb       NOT NULL,
    headers         jsonb       NOT NULL DEFAULT '{}',
    exception_type  text        NOT NULL,
    exception       text        NOT NULL,
    traceback       text,
    category        text        NOT NULL,
    severity        text        NOT NULL,
    retries         integer     NOT NULL,
    failed_at       timestamptz NOT NULL DEFAULT now(),
    -- The entry this task was a replay of (replays that fail again link back).
    replay_of       bigint REFERENCES dead_letters (id) ON DELETE SET NULL,
    replayed_at     timestamptz,
    replay_task_id  text
);
CREATE INDEX dead_letters_failed_at_idx ON dead_letters (failed_at);
CREATE INDEX dead_letters_task_name_idx ON dead_letters (task_name);
