"""Integration tests: real adapters (SQLite files, and later PostgreSQL and Kafka servers)."""
