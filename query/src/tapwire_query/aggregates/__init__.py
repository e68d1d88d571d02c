"""Anonymised aggregates for sharing beyond the customer: k-anonymous groups and differencing protection."""
