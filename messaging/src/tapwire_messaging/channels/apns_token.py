"""The APNs provider authentication token: a JWT signed with the team's ES256 key (token-based connection).

Apple wants ``{"alg": "ES256", "kid": <key id>}`` and ``{"iss": <team id>, "iat": <issued at>}``, refuses a
token older than an hour (``ExpiredProviderToken``) and throttles renewals more often than every 20 minutes
(``TooManyProviderTokenUpdates``). One token is shared by every send of a process and renewed after 50 minutes,
or at once when APNs calls it expired (a clock that drifted, a process that slept).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

RENEW_AFTER_S = 50 * 60


class ApnsProviderToken:
    """Mints and caches the bearer token; ``bearer`` never blocks (ES256 signing takes microseconds)."""

    def __init__(
        self,
        key_pem: bytes,
        *,
        key_id: str,
        team_id: str,
        clock: Callable[[], float] = time.time,
        renew_after_s: float = RENEW_AFTER_S,
    ) -> None:
        """Raises ValueError when the key is not a P-256 private key in PEM (an ``AuthKey_<key id>.p8``) or an
        identifier is missing."""
        if not key_id or not team_id:
            raise ValueError("APNs token authentication needs TAPWIRE_APNS_KEY_ID and TAPWIRE_APNS_TEAM_ID")
        try:
            key = load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"the APNs key is not a PEM private key: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("the APNs key must be an ES256 (P-256) key, as Apple issues them (.p8)")
        self._key = key
        self.key_id = key_id
        self.team_id = team_id
        self._clock = clock
        self._renew_after_s = renew_after_s
        self._token = ""
        self._issued_at = 0.0

    @classmethod
    def from_file(cls, path: Path, *, key_id: str, team_id: str) -> ApnsProviderToken:
        try:
            key_pem = path.read_bytes()
        except OSError as exc:
            raise ValueError(f"TAPWIRE_APNS_KEY_FILE: cannot read {path}: {exc.strerror}") from exc
        return cls(key_pem, key_id=key_id, team_id=team_id)

    def bearer(self) -> str:
        """The current token, renewed first when it is ``renew_after_s`` old."""
        now = self._clock()
        if not self._token or now - self._issued_at >= self._renew_after_s:
            issued = int(now)
            self._token = jwt.encode(
                {"iss": self.team_id, "iat": issued},
                self._key,
                algorithm="ES256",
                headers={"kid": self.key_id},
            )
            self._issued_at = now
        return self._token

    def expired(self, token: str) -> None:
        """APNs refused ``token`` as expired: the next ``bearer`` mints a new one (unless another send already
        did)."""
        if token == self._token:
            self._token = ""
