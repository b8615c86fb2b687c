-- The console pages open incidents newest first: an index of open ones by id makes that a range read,
-- not a scan of every incident ever recorded.
CREATE INDEX incidents_open_by_id ON incidents(id DESC) WHERE resolved_at IS NULL;
