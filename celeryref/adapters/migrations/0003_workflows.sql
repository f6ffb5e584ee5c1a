-- Workflows (the DAG engine) and the guide's domain tasks: e-mail log, users,
-- datasets.

-- One row per run of a workflow. Every change to an execution or its steps is
-- made under a row lock on this row (SELECT ... FOR UPDATE), so two steps that
-- finish at the same moment advance the graph one after the other.
CREATE TABLE workflow_executions (
    id           uuid PRIMARY KEY,
    workflow     text        NOT NULL,
    status       text        NOT NULL
                 CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled')),
    input        jsonb       NOT NULL,
    result       jsonb,
    error        text,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at  timestamptz
);
CREATE INDEX workflow_executions_created_at_idx ON workflow_executions (created_at);
CREATE INDEX workflow_executions_running_idx ON workflow_executions (status)
    WHERE status = 'running';

-- One row per step of an execution: the definition's step (snapshotted at start,
-- so a later change of the definition never affects a running execution) and
-- its state. A step leaves 'pending' exactly once, by a conditional UPDATE.
CREATE TABLE workflow_steps (
    execution_id     uuid        NOT NULL REFERENCES workflow_executions (id) ON DELETE CASCADE,
    name             text        NOT NULL,
    position         integer     NOT NULL,
    task             text        NOT NULL,
    queue            text        NOT NULL,
    depends_on       text[]      NOT NULL DEFAULT '{}',
    params           jsonb       NOT NULL DEFAULT '{}',
    max_retries      integer     NOT NULL,
    retry_delay      double precision NOT NULL,
    timeout_seconds  double precision,
    status           text        NOT NULL
                     CHECK (status IN ('pending', 'queued', 'running', 'succeeded',
                                       'failed', 'cancelled', 'skipped')),
    -- Celery task id, chosen when the step is queued (retries keep it).
    task_id          text,
    attempts         integer     NOT NULL DEFAULT 0,
    result           jsonb,
    error            text,
    queued_at        timestamptz,
    -- Set once the message is on the broker; a queued step without it is
    -- republished when the step that queued it is redelivered.
    published_at     timestamptz,
    started_at       timestamptz,
    finished_at      timestamptz,
    PRIMARY KEY (execution_id, name)
);
CREATE INDEX workflow_steps_task_id_idx ON workflow_steps (task_id);

-- Notification e-mails: one row per sending task, its latest outcome.
CREATE TABLE email_logs (
    id          bigserial PRIMARY KEY,
    task_id     text        NOT NULL UNIQUE,
    sender      text        NOT NULL,
    recipients  text[]      NOT NULL,
    subject     text        NOT NULL,
    status      text        NOT NULL CHECK (status IN ('sent', 'failed')),
    error       text,
    attempts    integer     NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX email_logs_created_at_idx ON email_logs (created_at);

-- Users that batch_process_users activates, deactivates or deletes.
CREATE TABLE users (
    id          bigserial PRIMARY KEY,
    email       text        NOT NULL UNIQUE,
    name        text        NOT NULL DEFAULT '',
    status      text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Records of named datasets (process_large_dataset, generate_report) and the
-- stored results of processing them.
CREATE TABLE dataset_records (
    id          bigserial PRIMARY KEY,
    dataset     text        NOT NULL,
    data        jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dataset_records_dataset_id_idx ON dataset_records (dataset, id);

CREATE TABLE dataset_results (
    id          bigserial PRIMARY KEY,
    dataset     text        NOT NULL,
    task_id     text        NOT NULL UNIQUE,
    options     jsonb       NOT NULL,
    result      jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
