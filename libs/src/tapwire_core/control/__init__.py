"""Control-plane store: accounts, credentials, later campaigns and privacy requests.

``store.ControlStore`` is the entry point (PostgreSQL in distributed mode, SQLite embedded); it migrates the
schema to head on start (``migrate``, revisions under ``migrations/versions``). Each domain keeps its tables,
values and operations in its own package (``accounts/``) on the shared ``base.Base``; ``models`` imports them all.
``accounts.AccountDirectory`` authenticates requests; ``bootstrap`` creates the start-up accounts.
"""
