"""Tests that pin how the store talks to the database: SQL text, statement and commit counts,
query plans. They change with what they pin; the behaviour they rely on is tested elsewhere."""
