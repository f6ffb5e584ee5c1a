-- Issue 16, F17 (committed but never published) and F18 (client idempotency keys).

-- F18: one row per client-supplied idempotency key: the task, workflow execution or
-- map-reduce job it created, and a fingerprint of the request, so a repeat returns the
-- first id and a different request under the same key is refused. Written in the same
-- transaction as the submission's own row (a catalog task has none: its row commits
-- after its message is on the broker); deleted with it when the submission is withdrawn.
CREATE TABLE client_submissions (
    client_key   text        PRIMARY KEY,
    kind         text        NOT NULL CHECK (kind IN ('task', 'workflow', 'job')),
    target_id    text        NOT NULL,
    fingerprint  text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX client_submissions_created_at_idx ON client_submissions (created_at);

-- F17: a job's chord is on the broker once published_at is set; the sweeper
-- republishes jobs committed without it. Jobs created before this migration were
-- dispatched by the code that created them.
ALTER TABLE mapreduce_jobs ADD COLUMN published_at timestamptz;
UPDATE mapreduce_jobs SET published_at = created_at;
CREATE INDEX mapreduce_jobs_unfinished_idx ON mapreduce_jobs (updated_at)
    WHERE status IN ('pending', 'running');

-- F17: the sweeper republishes queued steps whose message never reached the broker;
-- every publish of a step carries a fresh dispatch id, and the step remembers the
-- dispatch that started it, so a second message of the same step (a republish whose
-- original was on the broker after all) is dropped instead of running it twice.
ALTER TABLE workflow_steps ADD COLUMN running_dispatch text;
CREATE INDEX workflow_steps_unpublished_idx ON workflow_steps (queued_at)
    WHERE status = 'queued' AND published_at IS NULL;
