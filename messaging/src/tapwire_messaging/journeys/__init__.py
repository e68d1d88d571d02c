"""Journeys: multi-step graphs a user walks through (entry, waits, branches, A/B splits, sends, exit on goal).

- :mod:`.definition`: the validated, versioned JSON graph;
- :mod:`.store`: journeys, versions, and the campaigns behind their entry and send steps;
- :mod:`.positions`: users' positions (claimed under leases) and their per-step history;
- :mod:`.runner`: walks due positions through their steps;
- :mod:`.routes`: the ``/messaging/v1/journeys`` API.
"""
