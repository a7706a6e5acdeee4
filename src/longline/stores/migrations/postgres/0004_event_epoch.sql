-- Version 4: each event keeps the lease epoch of the append that stored it (NULL: appended
-- without one, outside worker mode), so an audit can tell which owner committed it.
ALTER TABLE events ADD COLUMN epoch bigint;
