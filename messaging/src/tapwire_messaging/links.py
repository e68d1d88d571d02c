"""Tracking and unsubscribe links under ``TAPWIRE_PUBLIC_URL``: minting, rewriting an HTML body to use them,
checking them when they come back, and counting their use.

Open and click links expire ``ttl_s`` after the message was rendered (``TAPWIRE_MESSAGING_LINK_TTL_DAYS``);
unsubscribe links never do, since withdrawing consent must keep working from any message, however old, and
all it can do is stop messages. Links minted before tokens carried an expiry (legacy tokens) expire ``ttl_s``
after their campaign's cutoff, the last moment one of its messages could have been sent.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from tapwire_messaging.signing import NEVER, BadToken, ExpiredLink, LinkSigner, LinkTarget

_HREF = re.compile(r'href="(https?://[^"]+)"', re.IGNORECASE)

CampaignCutoff = Callable[[str, int], Awaitable[int | None]]
"""``(account id, campaign id) -> the campaign's cutoff in ms``, None for a campaign that does not exist."""


class UseCounter:
    """Admits one use per link per ``window_s`` (a minute), in this process.

    Opens and clicks arrive unauthenticated, as often as anyone reloads a URL; only an admitted use touches the
    database or the bus. The counter keeps the latest ``capacity`` links (a digest and a window number each,
    about 150 bytes), so its memory is bounded whatever the traffic. Several processes each admit one use per
    window; the event id of a counted click is derived from the link and the window, so the warehouse keeps one.
    """

    def __init__(self, *, window_s: float = 60.0, capacity: int = 100_000) -> None:
        self.window_s = window_s
        self.capacity = capacity
        self._last: OrderedDict[bytes, int] = OrderedDict()

    def admit(self, token: str, now_s: float) -> str | None:
        """A key naming this link and window when this use counts, None when the link was already counted in
        the current window."""
        digest = hashlib.blake2b(token.encode(), digest_size=16).digest()
        window = int(now_s // self.window_s)
        if self._last.get(digest) == window:
            return None
        self._last[digest] = window
        self._last.move_to_end(digest)
        while len(self._last) > self.capacity:
            self._last.popitem(last=False)
        return f"{digest.hex()}:{window}"


class Links:
    def __init__(
        self,
        public_url: str,
        signer: LinkSigner,
        *,
        ttl_s: float,
        clock: Callable[[], float],
        campaign_cutoff: CampaignCutoff | None = None,
    ) -> None:
        self.base = public_url.rstrip("/")
        self.signer = signer
        self.ttl_s = ttl_s
        self.clock = clock
        self.uses = UseCounter()
        self._campaign_cutoff = campaign_cutoff

    def unsubscribe(self, target: LinkTarget) -> str:
        return f"{self.base}/m/u/{self.signer.token('unsubscribe', target, expires_s=NEVER)}"

    def open_pixel(self, target: LinkTarget) -> str:
        return f"{self.base}/m/o/{self.signer.token('open', target, expires_s=self._expiry())}.gif"

    def click(self, target: LinkTarget, url: str) -> str:
        token = self.signer.token("click", LinkTarget(*_fields(target), url=url), expires_s=self._expiry())
        return f"{self.base}/m/c/{token}"

    def track_html(self, body: str, target: LinkTarget) -> str:
        """Links through the click redirect, plus an open pixel at the end."""
        rewritten = _HREF.sub(
            lambda m: f'href="{html.escape(self.click(target, html.unescape(m.group(1))))}"', body
        )
        pixel = f'<img src="{html.escape(self.open_pixel(target))}" width="1" height="1" alt="">'
        return rewritten + pixel

    async def verify(self, purpose: str, token: str) -> LinkTarget:
        """The target of a genuine, unexpired link. Raises :class:`ExpiredLink` or :class:`BadToken`."""
        now = self.clock()
        link = self.signer.verify(purpose, token, now_s=now)
        if link.legacy and purpose != "unsubscribe":
            if self._campaign_cutoff is None:
                raise ExpiredLink("links without an expiry are no longer accepted here")
            cutoff_ms = await self._campaign_cutoff(link.target.account_id, link.target.campaign_id)
            if cutoff_ms is None:
                raise BadToken("the link's campaign does not exist")
            if now > cutoff_ms / 1000 + self.ttl_s:
                raise ExpiredLink("link expired")
        return link.target

    def _expiry(self) -> int:
        return int(self.clock() + self.ttl_s)


def _fields(target: LinkTarget) -> tuple[str, int, str, str, str]:
    return (target.account_id, target.campaign_id, target.variant, target.user_key, target.channel)
