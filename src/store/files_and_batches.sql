-- Files uploaded or produced under the background lane; their contents are in the
-- store's `files/` folder, named by id. `owner` is the gateway key's client (managed
-- auth) or the hex SHA-256 of the creating request's key (passthrough); never a key.
CREATE TABLE files (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    purpose TEXT NOT NULL,
    filename TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER
);
CREATE INDEX files_by_owner ON files (owner, created_at, id);

-- One row per batch: the Batch object's fields, its counters and usage totals.
CREATE TABLE batches (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    model TEXT,
    input_file_id TEXT NOT NULL,
    completion_window TEXT NOT NULL,
    window_seconds INTEGER NOT NULL,
    status TEXT NOT NULL,
    output_file_id TEXT,
    error_file_id TEXT,
    errors TEXT,
    metadata TEXT,
    created_at INTEGER NOT NULL,
    in_progress_at INTEGER,
    expires_at INTEGER NOT NULL,
    finalizing_at INTEGER,
    completed_at INTEGER,
    failed_at INTEGER,
    expired_at INTEGER,
    cancelling_at INTEGER,
    cancelled_at INTEGER,
    total INTEGER NOT NULL DEFAULT 0,
    completed INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    cached_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd TEXT NOT NULL DEFAULT '0'
);
CREATE INDEX batches_by_owner ON batches (owner, created_at, id);
CREATE INDEX batches_by_status ON batches (status);

-- One row per input line once validated: where it is in the input file, its custom_id,
-- and, once it has run, its result line (outcome 1: output file, 2: error file). A
-- result is written in the same transaction as the batch's counters, so each line is
-- counted and written exactly once however often the process dies.
CREATE TABLE batch_lines (
    batch_id TEXT NOT NULL,
    line INTEGER NOT NULL,
    start INTEGER NOT NULL,
    len INTEGER NOT NULL,
    custom_id TEXT NOT NULL,
    outcome INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    PRIMARY KEY (batch_id, line)
) WITHOUT ROWID;
CREATE INDEX batch_lines_pending ON batch_lines (batch_id, outcome, line);
