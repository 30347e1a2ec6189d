"""Alembic migrations of the catalog; they run on SQLite and PostgreSQL alike."""
