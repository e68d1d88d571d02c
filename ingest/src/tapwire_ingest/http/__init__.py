"""HTTP surface of the gateway."""
