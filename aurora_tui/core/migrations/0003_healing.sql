-- Healing: fix plans and their decisions, every action taken, and what was learned.
CREATE TABLE plans (
    id            INTEGER PRIMARY KEY,
    incident_id   INTEGER REFERENCES incidents(id),
    service       TEXT NOT NULL,
    pattern       TEXT NOT NULL,
    fix           TEXT NOT NULL,
    actions_json  TEXT NOT NULL,
    confidence    INTEGER NOT NULL,
    risk          TEXT NOT NULL,
    verdicts_json TEXT NOT NULL,
    decision      TEXT NOT NULL CHECK (decision IN ('run', 'wait', 'block')),
    status        TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'executing', 'executed', 'verified', 'failed', 'blocked', 'expired', 'escalated')),
    summary       TEXT NOT NULL,
    evidence_json TEXT NOT NULL DEFAULT '{}',
    evidence_at   REAL NOT NULL,
    created_at    REAL NOT NULL,
    decided_at    REAL,
    decided_by    TEXT,
    grade         INTEGER,
    comment       TEXT,
    reason        TEXT,
    executed_at   REAL,
    finished_at   REAL,
    outcome       TEXT
);
CREATE INDEX plans_status ON plans(status, id);
CREATE INDEX plans_incident ON plans(incident_id);

-- Every action executed, with the target's identity and who allowed it: the audit behind "0 unsafe actions".
CREATE TABLE actions_log (
    id          INTEGER PRIMARY KEY,
    plan_id     INTEGER REFERENCES plans(id),
    ts          REAL NOT NULL,
    kind        TEXT NOT NULL,
    service     TEXT,
    target_pid  INTEGER,
    target_cmd  TEXT,
    owned       INTEGER,
    approved_by TEXT,
    result      TEXT NOT NULL
);

CREATE TABLE beliefs (
    pattern    TEXT NOT NULL,
    fix        TEXT NOT NULL,
    alpha      REAL NOT NULL DEFAULT 1,
    beta       REAL NOT NULL DEFAULT 1,
    successes  INTEGER NOT NULL DEFAULT 0,
    failures   INTEGER NOT NULL DEFAULT 0,
    rejections INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    PRIMARY KEY (pattern, fix)
);

-- Each distinct configuration a service ran with, so that rollback has something to go back to.
CREATE TABLE service_configs (
    id              INTEGER PRIMARY KEY,
    service         TEXT NOT NULL,
    config_json     TEXT NOT NULL,
    first_seen      REAL NOT NULL,
    last_healthy_at REAL,
    UNIQUE (service, config_json)
);
