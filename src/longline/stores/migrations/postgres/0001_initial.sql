-- longline PostgreSQL schema, version 1. Applied once, in one transaction, by the migrator.

-- One row per stream: the append lock (SELECT ... FOR UPDATE), the last seq and the checkpoint.
-- Leases live in their own table (0002_leases.sql), keyed by stream with an owner and an epoch.
CREATE TABLE streams (
    stream      text PRIMARY KEY,
    last_seq    bigint NOT NULL DEFAULT 0,
    cursor      text,
    updated_at  double precision NOT NULL
);

-- Clustered by (stream, seq) for ordered reads; (stream, key) unique makes append idempotent.
CREATE TABLE events (
    stream       text NOT NULL,
    seq          bigint NOT NULL,
    key          text NOT NULL,
    cursor       text,
    received_at  double precision NOT NULL,
    event        text,
    payload      text NOT NULL,
    PRIMARY KEY (stream, seq),
    UNIQUE (stream, key)
);

CREATE TABLE quarantine (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream       text NOT NULL,
    reason       text NOT NULL,
    raw          bytea NOT NULL,
    received_at  double precision NOT NULL
);
CREATE INDEX quarantine_stream_id ON quarantine (stream, id);

CREATE TABLE status (
    stream      text PRIMARY KEY,
    data        jsonb NOT NULL,
    updated_at  double precision NOT NULL
);

-- The delivery cursor of each (processor, stream): the highest acknowledged seq.
CREATE TABLE delivery (
    processor   text NOT NULL,
    stream      text NOT NULL,
    seq         bigint NOT NULL,
    updated_at  double precision NOT NULL,
    PRIMARY KEY (processor, stream)
);

CREATE TABLE dead_letters (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    processor   text NOT NULL,
    stream      text NOT NULL,
    seq         bigint NOT NULL,
    key         text NOT NULL,
    error       text NOT NULL,
    attempts    integer NOT NULL,
    failed_at   double precision NOT NULL
);
CREATE INDEX dead_letters_processor_id ON dead_letters (processor, id);
