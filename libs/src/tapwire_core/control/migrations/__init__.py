"""Alembic environment and numbered revisions of the control-plane schema; run by ``tapwire_core.control.migrate``."""
