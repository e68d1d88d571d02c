"""Segment HTTP Tracking API wire format (also spoken by RudderStack's SDKs): messages to canonical envelopes."""
