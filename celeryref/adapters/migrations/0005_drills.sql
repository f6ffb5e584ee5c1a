-- Fault drills (devtools/tasks/default/drills.py): tables that make executions
-- and side effects countable, so a test can prove "ran again" or "ran twice".
-- The drills run only where FAULT_INJECTION=1; in a normal deployment these
-- tables stay empty.

-- One row per execution that started (every delivery that reached the task body).
CREATE TABLE drill_runs (
    id          bigserial PRIMARY KEY,
    key         text        NOT NULL,
    task_id     text        NOT NULL,
    worker      text,
    pid         integer     NOT NULL,
    queue       text,
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX drill_runs_key_idx ON drill_runs (key);

-- One row per side effect. No unique constraint on purpose: a duplicate side
-- effect must be countable, not refused by the table.
CREATE TABLE drill_effects (
    id          bigserial PRIMARY KEY,
    key         text        NOT NULL,
    task_id     text        NOT NULL,
    worker      text,
    queue       text,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX drill_effects_key_idx ON drill_effects (key);

-- The "fix" of a poison-message drill: require_fixture(key) fails until its key
-- is here.
CREATE TABLE drill_fixtures (
    key         text PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
