"""Persistence: the tables, the one place that builds the engine, migrations and the queries."""
