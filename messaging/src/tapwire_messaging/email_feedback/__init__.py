"""Bounces and complaints: reports read from every intake (the sender's own SMTP replies, the bounce mailbox,
raw reports over HTTP, the providers' webhooks) into notices, then applied: recorded, suppressing the address
when they say so, and published as events."""
