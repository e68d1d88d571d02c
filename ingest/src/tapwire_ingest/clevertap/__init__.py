"""CleverTap Server API v1 wire format."""
