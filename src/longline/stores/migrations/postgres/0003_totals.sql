-- Version 3: life-long counters per stream, in the stream's row, updated by the transactions
-- that write what they count (append: events, duplicates, reconnects; quarantine).
ALTER TABLE streams
    ADD COLUMN events      bigint NOT NULL DEFAULT 0,
    ADD COLUMN duplicates  bigint NOT NULL DEFAULT 0,
    ADD COLUMN quarantined bigint NOT NULL DEFAULT 0,
    ADD COLUMN reconnects  bigint NOT NULL DEFAULT 0;

-- A schema made before: seq is gapless from 1, so last_seq is the number of events stored.
-- Duplicates and reconnects were never recorded and start at 0.
UPDATE streams SET events = last_seq;
INSERT INTO streams (stream, updated_at)
    SELECT DISTINCT stream, 0 FROM quarantine ON CONFLICT DO NOTHING;
UPDATE streams s SET quarantined = q.n
    FROM (SELECT stream, count(*) AS n FROM quarantine GROUP BY stream) q
    WHERE s.stream = q.stream;
