-- Runs once when the official image initialises a new cluster.
CREATE EXTENSION IF NOT EXISTS strata;
