"""Telling people: subscriptions, rendering, the Slack and webhook sinks and the dispatcher."""
