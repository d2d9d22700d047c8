-- Spend per budgeted client and period, in nano-dollars (1e-9 USD). A row holds the
-- period's whole amount and is written over, never added to, so a write repeated after
-- a failure never counts twice. `period_start` is seconds since the Unix epoch.
CREATE TABLE budget_spend (
    client TEXT NOT NULL,
    period_start INTEGER NOT NULL,
    spent_nanos INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (client, period_start)
);
