-- Identity that cannot race (pid reuse, a command line read before exec): what a process's record holds
-- beyond pid, create time and command line. All NULL in rows written before: those fall back to the old
-- check (create time within 0.05 s and the same command line).
ALTER TABLE owned_processes ADD COLUMN starttime INTEGER;  -- /proc/PID/stat field 22, clock ticks since boot
ALTER TABLE owned_processes ADD COLUMN exe TEXT;           -- /proc/PID/exe once exec'd
ALTER TABLE owned_processes ADD COLUMN pgid INTEGER;
ALTER TABLE owned_processes ADD COLUMN sid INTEGER;
ALTER TABLE owned_processes ADD COLUMN cgroup TEXT;        -- the cgroup v2 path, where there is one
ALTER TABLE owned_processes ADD COLUMN boot_id TEXT;       -- a start time means nothing across a reboot
CREATE INDEX owned_processes_service_started ON owned_processes(service, started_at);

-- A plan that was approved or executing when the engine died, and that what is there now made moot
-- (the service already restarted since), ends "superseded". SQLite cannot alter a CHECK constraint, so
-- the table is rebuilt with its rows and ids. Foreign keys are on and cannot be turned off inside the
-- migration's transaction, so actions_log, which refers to plans, is rebuilt first against the new
-- table: no step ever leaves a row pointing at nothing.
CREATE TABLE plans_new (
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
    status        TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'executing', 'executed', 'verified', 'failed', 'blocked', 'expired', 'escalated', 'superseded')),
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

INSERT INTO plans_new SELECT * FROM plans;
CREATE TABLE actions_log_new (
    id          INTEGER PRIMARY KEY,
    plan_id     INTEGER REFERENCES plans_new(id),
    ts          REAL NOT NULL,
    kind        TEXT NOT NULL,
    service     TEXT,
    target_pid  INTEGER,
    target_cmd  TEXT,
    owned       INTEGER,
    approved_by TEXT,
    result      TEXT NOT NULL
);
INSERT INTO actions_log_new SELECT * FROM actions_log;
DROP TABLE actions_log;
DROP TABLE plans;
-- Renaming the new plans table rewrites actions_log_new's reference to it as "plans".
ALTER TABLE plans_new RENAME TO plans;
ALTER TABLE actions_log_new RENAME TO actions_log;
CREATE INDEX plans_status ON plans(status, id);
CREATE INDEX plans_incident ON plans(incident_id);
