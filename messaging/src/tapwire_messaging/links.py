"""Tracking and unsubscribe links under ``TAPWIRE_PUBLIC_URL``, and rewriting an HTML body to use them."""

from __future__ import annotations

import html
import re

from tapwire_messaging.signing import LinkSigner, LinkTarget

_HREF = re.compile(r'href="(https?://[^"]+)"', re.IGNORECASE)


class Links:
    def __init__(self, public_url: str, signer: LinkSigner) -> None:
        self.base = public_url.rstrip("/")
        self.signer = signer

    def unsubscribe(self, target: LinkTarget) -> str:
        return f"{self.base}/m/u/{self.signer.token('unsubscribe', target)}"

    def open_pixel(self, target: LinkTarget) -> str:
        return f"{self.base}/m/o/{self.signer.token('open', target)}.gif"

    def click(self, target: LinkTarget, url: str) -> str:
        return f"{self.base}/m/c/{self.signer.token('click', LinkTarget(*_fields(target), url=url))}"

    def track_html(self, body: str, target: LinkTarget) -> str:
        """Links through the click redirect, plus an open pixel at the end."""
        rewritten = _HREF.sub(
            lambda m: f'href="{html.escape(self.click(target, html.unescape(m.group(1))))}"', body
        )
        pixel = f'<img src="{html.escape(self.open_pixel(target))}" width="1" height="1" alt="">'
        return rewritten + pixel


def _fields(target: LinkTarget) -> tuple[str, int, str, str, str]:
    return (target.account_id, target.campaign_id, target.variant, target.user_key, target.channel)
