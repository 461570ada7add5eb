"""Shared test helpers: one of each kind, so tests agree on how time, statements, the service
process and dispatchers are faked or observed."""
