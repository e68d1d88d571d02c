"""Control-plane store: accounts, credentials, later campaigns and privacy requests."""
