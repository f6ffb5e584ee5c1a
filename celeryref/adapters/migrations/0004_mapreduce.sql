-- Distributed map-reduce (SPEC F8): datasets, jobs, per-partition partials, results.

-- A named dataset of item_count items with dense indexes 0..item_count-1. The
-- row and its items are written in one transaction (the generator), so a
-- dataset is never visible half-loaded.
CREATE TABLE datasets (
    id          bigserial PRIMARY KEY,
    name        text        NOT NULL UNIQUE,
    item_count  bigint      NOT NULL DEFAULT 0 CHECK (item_count >= 0),
    seed        bigint,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Items are JSON documents: the point of validation is that real data arrives
-- with missing fields and wrong types, which typed columns would refuse at load.
-- `json`, not `jsonb`: items are written once and read back whole, in bulk, by
-- index range; nothing queries inside them. `json` keeps the validated text and
-- returns it as is, while `jsonb` re-serializes its binary form on every read:
-- measured here, reading a 50,000-item partition cost the server about half the
-- time with `json` (the server's CPU is the bottleneck of a map task).
-- The primary key is also the range index partitions are read through
-- (item_index >= start AND item_index < end, in order).
CREATE TABLE dataset_items (
    dataset_id  bigint NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    item_index  bigint NOT NULL CHECK (item_index >= 0),
    data        json   NOT NULL,
    PRIMARY KEY (dataset_id, item_index)
);

CREATE TABLE mapreduce_jobs (
    id                uuid PRIMARY KEY,
    dataset_id        bigint      NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    function          text        NOT NULL,
    options           jsonb       NOT NULL DEFAULT '{}',
    status            text        NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
    partitions_total  integer     NOT NULL CHECK (partitions_total >= 0),
    partitions_done   integer     NOT NULL DEFAULT 0,
    items_total       bigint      NOT NULL,
    items_processed   bigint      NOT NULL DEFAULT 0,
    error             text,
    -- Id of the chord body (reduce_job) task.
    reduce_task_id    text,
    created_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at        timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at       timestamptz
);
CREATE INDEX mapreduce_jobs_created_at_idx ON mapreduce_jobs (created_at);

-- One row per (job, partition): a map task that runs again (retry, redelivery
-- after a crash) REPLACES its row (INSERT ... ON CONFLICT DO UPDATE) and bumps
-- attempts; it never adds a second partial, so nothing is counted twice.
CREATE TABLE mapreduce_partials (
    job_id           uuid        NOT NULL REFERENCES mapreduce_jobs (id) ON DELETE CASCADE,
    partition_index  integer     NOT NULL CHECK (partition_index >= 0),
    start_index      bigint      NOT NULL,
    end_index        bigint      NOT NULL CHECK (end_index >= start_index),
    items            bigint      NOT NULL,
    partial          jsonb       NOT NULL,
    attempts         integer     NOT NULL DEFAULT 1,
    updated_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (job_id, partition_index)
);

-- The final result of a job, written by the reducer together with the job's
-- 'succeeded' status.
CREATE TABLE processing_results (
    job_id      uuid        PRIMARY KEY REFERENCES mapreduce_jobs (id) ON DELETE CASCADE,
    dataset_id  bigint      NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    function    text        NOT NULL,
    items       bigint      NOT NULL,
    result      jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
