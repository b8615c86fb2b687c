-- Incidents: one open incident per (service, pattern), enforced by a partial unique index.
-- Host-level incidents use the service name "(host)", which no configured service can have.
CREATE TABLE incidents (
    id              INTEGER PRIMARY KEY,
    service         TEXT NOT NULL,
    pattern         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('open', 'acknowledged', 'healing', 'awaiting_approval', 'resolved', 'escalated')),
    severity        TEXT NOT NULL,
    confidence      INTEGER NOT NULL,
    summary         TEXT NOT NULL,
    evidence_json   TEXT NOT NULL DEFAULT '{}',
    onset_at        REAL NOT NULL,
    opened_at       REAL NOT NULL,
    last_seen       REAL NOT NULL,
    resolved_at     REAL,
    count           INTEGER NOT NULL DEFAULT 1,
    detect_seconds  REAL NOT NULL,
    recover_seconds REAL,
    caused_by       INTEGER REFERENCES incidents(id),
    acknowledged_by TEXT
);
CREATE UNIQUE INDEX incidents_one_open ON incidents(service, pattern) WHERE resolved_at IS NULL;
CREATE INDEX incidents_opened ON incidents(opened_at DESC);
CREATE INDEX incidents_service ON incidents(service, opened_at DESC);

CREATE TABLE incident_events (
    id          INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL REFERENCES incidents(id),
    ts          REAL NOT NULL,
    kind        TEXT NOT NULL,
    message     TEXT NOT NULL,
    data_json   TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX incident_events_incident ON incident_events(incident_id, ts);

CREATE TABLE silences (
    id         INTEGER PRIMARY KEY,
    service    TEXT NOT NULL,
    until      REAL NOT NULL,
    reason     TEXT NOT NULL,
    created_at REAL NOT NULL,
    created_by TEXT NOT NULL,
    suppressed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX silences_service ON silences(service, until);
