-- Dead letters kept in Redis while Postgres was away are moved into the table by
-- celeryref.tasks.scheduled.dead_letters.drain_unrecorded. Each carries a key: a drain
-- that crashed after its insert committed, before the entry left Redis, inserts
-- nothing the second time (ON CONFLICT (record_key) DO NOTHING). NULL for entries
-- written straight to the table.
ALTER TABLE dead_letters ADD COLUMN record_key text UNIQUE;
