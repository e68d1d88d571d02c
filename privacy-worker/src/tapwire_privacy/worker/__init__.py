"""The privacy worker: claims due requests and moves each through its phases, resumably.

- ``loop``: the worker's loop (claim, hand out, chores);
- ``erasure``: the erasure pass over one account's claimed erasures, store by store, verified twice;
- ``answers``: exports, rectifications and objections, one pass each;
- ``identities``: each request's keys, closed over every store's links;
- ``forwarding``: telling the data recipients of a subject's data;
- ``progress``: a claimed request during a pass, and saving its progress under the lease;
- ``housekeeping``: expired archives, the retention purge, deadline gauges, notices.
"""

from tapwire_privacy.worker.loop import PrivacyWorker

__all__ = ["PrivacyWorker"]
