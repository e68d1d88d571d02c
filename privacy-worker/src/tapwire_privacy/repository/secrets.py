"""The deployment's privacy secrets (``privacy_keys``): the identifier hash salt and the link-signing key."""

from __future__ import annotations

from tapwire_core.control.privacy.subject_keys import IDENTIFIER_SALT, LINK_SIGNING, deployment_secret
from tapwire_privacy.repository.transactions import Transactions


class DeploymentSecrets:
    """Each secret is created at random the first time any service asks for it, then never changes."""

    def __init__(self, transactions: Transactions) -> None:
        self._tx = transactions

    async def identifier_salt(self) -> bytes:
        """The salt of every stored identifier hash (request records, suppressions, export archives)."""
        return await self._get(IDENTIFIER_SALT)

    async def link_key(self) -> bytes:
        """The key signing export download links."""
        return await self._get(LINK_SIGNING)

    async def _get(self, name: str) -> bytes:
        async with self._tx.begin() as session:
            return await deployment_secret(session, name)
