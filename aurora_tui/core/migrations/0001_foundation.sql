-- The engine's foundation: services, their samples, host samples, the event log and engine runs.
CREATE TABLE services (
    name        TEXT PRIMARY KEY,
    config_json TEXT NOT NULL,
    first_seen  REAL NOT NULL,
    last_seen   REAL NOT NULL
);

CREATE TABLE samples (
    id              INTEGER PRIMARY KEY,
    service         TEXT NOT NULL REFERENCES services(name),
    ts              REAL NOT NULL,
    state           TEXT NOT NULL,
    pid             INTEGER,
    status          TEXT,
    cpu_percent     REAL,
    rss             INTEGER,
    fds             INTEGER,
    threads         INTEGER,
    connections     INTEGER,
    children        INTEGER,
    zombies         INTEGER,
    port_listening  INTEGER,
    port_holder_pid INTEGER,
    healthy         INTEGER,
    http_status     INTEGER,
    latency_ms      REAL,
    health_error    TEXT,
    data_json       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX samples_service_ts ON samples(service, ts);
CREATE INDEX samples_ts ON samples(ts);

CREATE TABLE host_samples (
    id            INTEGER PRIMARY KEY,
    ts            REAL NOT NULL,
    cpu_percent   REAL NOT NULL,
    mem_percent   REAL NOT NULL,
    mem_available INTEGER NOT NULL,
    load1         REAL NOT NULL,
    disk_percent  REAL NOT NULL,
    disk_free     INTEGER NOT NULL
);
CREATE INDEX host_samples_ts ON host_samples(ts);

CREATE TABLE engine_runs (
    id            INTEGER PRIMARY KEY,
    started_at    REAL NOT NULL,
    stopped_at    REAL,
    pid           INTEGER NOT NULL,
    config_source TEXT NOT NULL,
    clean_exit    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE events (
    id        INTEGER PRIMARY KEY,
    ts        REAL NOT NULL,
    run_id    INTEGER REFERENCES engine_runs(id),
    kind      TEXT NOT NULL,
    service   TEXT REFERENCES services(name),
    message   TEXT NOT NULL,
    data_json TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_ts ON events(ts);
CREATE INDEX events_service_ts ON events(service, ts);

-- Every process the engine spawned, with the identity needed to recognise it later: after a kill -9 of
-- the engine, the next engine stops the copies its predecessor left running (if, and only if, pid,
-- create time and command line still match).
CREATE TABLE owned_processes (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES engine_runs(id),
    service     TEXT NOT NULL REFERENCES services(name),
    pid         INTEGER NOT NULL,
    create_time REAL NOT NULL,
    cmdline     TEXT NOT NULL,
    started_at  REAL NOT NULL,
    ended_at    REAL,
    exit_code   INTEGER,
    exit_signal TEXT
);
CREATE INDEX owned_processes_open ON owned_processes(ended_at);
