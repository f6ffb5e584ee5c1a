-- Tables of the first task set: sessions, beat heartbeats, health checks, reports.

CREATE TABLE user_sessions (
    id          bigserial PRIMARY KEY,
    user_id     bigint      NOT NULL,
    token       text        NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX user_sessions_expires_at_idx ON user_sessions (expires_at);

CREATE TABLE beat_heartbeats (
    id        bigserial PRIMARY KEY,
    source    text        NOT NULL,
    note      text        NOT NULL DEFAULT '',
    worker    text,
    task_id   text,
    fired_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX beat_heartbeats_fired_at_idx ON beat_heartbeats (fired_at);

CREATE TABLE health_checks (
    id           bigserial PRIMARY KEY,
    worker       text,
    redis_ms     double precision NOT NULL,
    postgres_ms  double precision NOT NULL,
    checked_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX health_checks_checked_at_idx ON health_checks (checked_at);

CREATE TABLE reports (
    id            bigserial PRIMARY KEY,
    kind          text        NOT NULL,
    period_start  timestamptz NOT NULL,
    period_end    timestamptz NOT NULL,
    body          jsonb       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
