"""Self-hostable Omega servers: store-and-forward, relay, bootstrap."""
