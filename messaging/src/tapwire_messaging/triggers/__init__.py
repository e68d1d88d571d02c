"""Behaviour-triggered campaigns: an event on the stream starts a durable timer that ends in a message.

- :mod:`.spec`: the trigger a campaign is sent on, validated (:class:`TriggerSpec`);
- :mod:`.filters`: trigger property filters evaluated on one event in memory;
- :mod:`.live`: the running triggered campaigns, indexed by the events they react to;
- :mod:`.evaluator`: the event stream's consumer, which writes timers and cancels abandoned ones;
- :mod:`.timers`: the timers table (claimed under leases, like the outbox);
- :mod:`.firing`: the timer runner, which turns due timers into outbox rows.
"""
