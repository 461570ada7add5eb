"""Sending what the outbox holds: the worker loop (:mod:`.dispatcher`), the outcome writer
(:mod:`.outcomes`); what a failed send means is decided in the core
(:mod:`notifier.core.failure_decision`)."""
