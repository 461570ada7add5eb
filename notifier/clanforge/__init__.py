"""The Clanforge side: the typed job status, the reply mapping and the HTTP client."""
