"""Messaging: campaigns to segments over email, push, SMS and webhooks, delivered through an outbox."""
