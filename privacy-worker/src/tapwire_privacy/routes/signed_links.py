"""The request a signed link names: the link is the credential of the routes that need no passcode."""

from __future__ import annotations

from tapwire_core.http.errors import ApiError
from tapwire_privacy.export_archive import LinkRefused, check_link
from tapwire_privacy.records import RequestView
from tapwire_privacy.repository import RequestNotFound
from tapwire_privacy.service import PrivacyService


async def linked_request(
    privacy: PrivacyService, request_id: str, *, expires: str, signature: str, missing: str
) -> RequestView:
    """The request ``request_id`` once its link checks out (403 forged or altered, 410 expired); 404 with
    ``missing`` when there is no such request."""
    try:
        check_link(
            await privacy.repository.secrets.link_key(),
            request_id,
            expires=expires,
            signature=signature,
            now=privacy.clock(),
        )
    except LinkRefused as exc:
        raise ApiError(exc.status, exc.reason) from None
    try:
        return await privacy.repository.requests.get(request_id)
    except RequestNotFound:
        raise ApiError(404, missing) from None
