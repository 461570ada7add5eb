"""Alembic migrations, shipped as ``notifier.migrations``."""
