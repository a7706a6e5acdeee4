-- Version 2: stream leases with a fencing epoch, and one dead letter per (processor, stream, seq).

-- One owner per stream. Taking the lease increments epoch; an append carrying an older epoch
-- still inserts its events but may not move the checkpoint. Taken and checked while holding the
-- stream's row lock in streams, so a lease change and an append never interleave.
CREATE TABLE leases (
    stream      text PRIMARY KEY,
    owner       text NOT NULL,
    epoch       bigint NOT NULL,
    expires_at  double precision NOT NULL,
    live        boolean NOT NULL DEFAULT false
);

-- Failing again (a re-delivery that fails) updates the dead letter and keeps its id.
CREATE UNIQUE INDEX dead_letters_event ON dead_letters (processor, stream, seq);
