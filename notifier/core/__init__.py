"""The pure rules of the notifier: job status, events, the detector, timing, the poll plan,
subscription matching, the retry policy and live-message types.

Plain dataclasses and functions over them; nothing here imports configuration, a database, an
HTTP library or a template engine, so every rule is tested without I/O.
"""
