"""The delivery loop: fill the outbox from audiences, claim due rows, apply the audience rules, send, record.

One :class:`~tapwire_messaging.delivery.sender.Sender` per process assembles these pieces, each an asyncio task
(or several) with one job:

- :mod:`.scheduler` starts due campaigns, has :mod:`.filling` write their outbox rows in chunks, and marks
  finished campaigns completed;
- :mod:`.claimer` leases due rows, judges each under :mod:`.audience_rules` (consent, opt-outs, dead tokens,
  frequency caps, quiet hours) and queues the rows cleared to send;
- :mod:`.dispatcher` workers render each queued row into a provider message (:mod:`.messages`) and send it;
- :mod:`.recorder` writes outcomes in batches and publishes feedback events;
- :mod:`.leases` extends the leases of rows still in flight.

Crash safety: a row is ``sending`` under a lease before its provider call and gets its outcome after. A crash
in between leaves it ``sending``; when the lease expires it is claimed again and re-sent with the same
idempotency key (Message-ID, Idempotency-Key, apns-id), which providers use to drop the repeat. Nothing is
lost, and a row already recorded is never sent again. The send window bounds that in-between state: at most
``Settings.resolved_send_window()`` messages are with providers (or on their way) without a recorded outcome,
so a crash makes providers receive at most that many messages a second time.
"""
