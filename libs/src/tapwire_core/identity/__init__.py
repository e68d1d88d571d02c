"""The identity graph: which identifiers (user ids, anonymous ids, object ids, emails, phones) are one person.

``graph.IdentityGraph`` keeps the graph in the control-plane database and answers merges, demerges and
"everything linked to this identifier" (``linked_identifiers``, used by the privacy worker). Every change it makes
comes back as ``projection.AliasRow`` values: the rows of the warehouse's ``user_aliases`` table, which the
ingestion path publishes on the bus so queries count a merged user's earlier events for the merged user.
"""

from tapwire_core.identity.graph import IdentityGraph, LinkOutcome, LinkRequest, MergeRefused
from tapwire_core.identity.keys import KINDS, NodeKind, canonical_rank, kind_of, parse_identifier
from tapwire_core.identity.projection import AliasRow, alias_envelopes

__all__ = [
    "KINDS",
    "AliasRow",
    "IdentityGraph",
    "LinkOutcome",
    "LinkRequest",
    "MergeRefused",
    "NodeKind",
    "alias_envelopes",
    "canonical_rank",
    "kind_of",
    "parse_identifier",
]
