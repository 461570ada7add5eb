"""Polling: what is due, what one poll means (pure) and the tick that does it (I/O)."""
