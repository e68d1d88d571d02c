"""The console's control-plane domain: users and roles, sign-in sessions and throttling, the audit log."""
