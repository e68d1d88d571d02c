"""tapwire."""
