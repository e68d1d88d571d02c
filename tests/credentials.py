"""The credential secret of the tests: keys the lookup digests of stores opened in the test process, and goes
into the environment of the distributed services the tests start (``TAPWIRE_CREDENTIAL_SECRET``)."""

from __future__ import annotations

from tapwire_core.control.accounts.lookup import LookupDigests

CREDENTIAL_SECRET = "tests-credential-secret-0123456789abcdef"
LOOKUP_DIGESTS = LookupDigests([CREDENTIAL_SECRET])
