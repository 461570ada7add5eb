"""What we tell people about: event types, the event record and the pure transition detector."""
