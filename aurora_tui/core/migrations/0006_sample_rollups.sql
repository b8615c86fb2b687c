-- Per-minute roll-ups of service samples (see core/rollup.py), kept 30 days, so that raw samples need
-- only be written when they say something new. A row per sample per scan cannot fit the disk: 200
-- services at 15 s are 1.15 M rows a day; a row per service per minute is 288 000.
--
-- Rows are small on purpose: the service is an integer id (not its name, repeated on every row), the
-- minute is floor(ts / 60), and figures are integers: cpu and latency in tenths (of a percent, of a
-- millisecond), rss in KiB, the state as a code (rollup.STATE_CODES). Existing `samples` rows are left
-- as they are; they are rolled up as they are pruned.
CREATE TABLE service_ids (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

-- Keyed (minute, service): every write appends at the end of the tree (pages stay full), pruning is a
-- range at its start, and a page of history is a range read; no other index is needed.
CREATE TABLE sample_minutes (
    minute          INTEGER NOT NULL,
    service_id      INTEGER NOT NULL REFERENCES service_ids(id),
    samples         INTEGER NOT NULL,
    healthy         INTEGER NOT NULL,
    cpu_min         INTEGER,
    cpu_avg         INTEGER,
    cpu_max         INTEGER,
    rss_min         INTEGER,
    rss_avg         INTEGER,
    rss_max         INTEGER,
    latency_min     INTEGER,
    latency_avg     INTEGER,
    latency_max     INTEGER,
    fds_max         INTEGER,
    threads_max     INTEGER,
    connections_max INTEGER,
    state           INTEGER,
    pid             INTEGER,
    PRIMARY KEY (minute, service_id)
) WITHOUT ROWID;
