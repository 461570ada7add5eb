"""clanforge-notifier: tells Slack and chatops webhooks what happens to Clanforge image builds."""

__version__ = "0.1.0"
