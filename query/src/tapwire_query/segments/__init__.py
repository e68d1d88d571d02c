"""Saved segments: named CQL definitions kept in the control plane, counted and listed on demand."""
