-- Issue 9: an honest idempotency key, and durable delivery counts.

-- The sha256 of the canonical request that made each verdict
-- (worker::request::request_sha256 says which fields). A second request
-- with the same request_id and another hash is a conflict, not a
-- duplicate. Rows stored before this migration have NULL: they match any
-- request, as every request matched them before.
-- Nullable with no default, so adding it rewrites nothing; the CHECK is
-- NOT VALID so it does not scan the existing rows under an exclusive lock
-- (they are all NULL anyway), yet every new row is checked.
ALTER TABLE verdicts ADD COLUMN request_sha256 TEXT;
ALTER TABLE verdicts ADD CONSTRAINT verdicts_request_sha256_hex
    CHECK (request_sha256 ~ '^[0-9a-f]{64}$') NOT VALID;

-- How many times each consumed message has been delivered to a worker. A
-- message redelivered after more than worker.max_attempts deliveries that
-- never finished (the worker was OOM-killed or crashed with it in flight)
-- is dead-lettered as crash_loop instead of killing the next worker.
-- Rows are not deleted when a message finishes: the worker prunes rows not
-- seen for a while (store::Store::forget_deliveries_before), by last_seen.
CREATE TABLE deliveries (
    topic      TEXT NOT NULL,
    partition  INTEGER NOT NULL,
    "offset"   BIGINT NOT NULL,
    attempts   INTEGER NOT NULL CHECK (attempts >= 1),
    first_seen TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition, "offset")
);
CREATE INDEX deliveries_last_seen ON deliveries (last_seen);
