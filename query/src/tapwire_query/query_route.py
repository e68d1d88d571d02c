"""The route class of every query endpoint: its errors answered one way, its work stopped when the client leaves.

A query can keep the warehouse busy for a minute; a client that gave up before the answer (a timeout, a closed
tab) should not leave it running. Beside the endpoint, ``QueryRoute`` listens for the client's disconnect once
the endpoint has read the whole request body (or at once when the request declares none): the endpoint is then
cancelled, which cancels the warehouse statement it awaits (``Warehouse.query`` kills it on ClickHouse), and
the request ends as 499. Reading only after the endpoint read the body keeps authentication
before the body: nothing here reads a byte the endpoint has not asked for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response
from starlette.types import Message, Receive

from tapwire_query.errors import QUERY_ERRORS, ClientGone, api_error


class _Receiver:
    """Stands between the endpoint and the server's ``receive``: passes the body through as the endpoint asks
    for it, then (``until_disconnect``) is the only reader, and answers the endpoint's later calls itself."""

    def __init__(self, receive: Receive, *, bodiless: bool) -> None:
        self._receive = receive
        self._bodiless = bodiless
        self._body_read = asyncio.Event()
        self._disconnected = asyncio.Event()
        self._held: Message | None = None

    async def receive(self) -> Message:
        if self._held is not None:
            message, self._held = self._held, None
            return message
        if self._body_read.is_set():
            await self._disconnected.wait()
            return {"type": "http.disconnect"}
        message = await self._receive()
        self._note(message)
        return message

    @property
    def disconnected(self) -> bool:
        return self._disconnected.is_set()

    async def until_disconnect(self) -> None:
        """Return once the client has gone."""
        if self._bodiless and not self._body_read.is_set():
            # The one (empty) body message is read here and held for the endpoint, should it ask.
            self._held = await self._receive()
            self._note(self._held)
        await self._body_read.wait()
        while not self._disconnected.is_set():
            self._note(await self._receive())

    def _note(self, message: Message) -> None:
        if message["type"] == "http.disconnect":
            self._body_read.set()
            self._disconnected.set()
        elif not message.get("more_body", False):
            self._body_read.set()


def _declares_no_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return "transfer-encoding" not in request.headers and (length is None or length.strip() == "0")


class QueryRoute(APIRoute):
    """Answers the query path's errors through ``api_error``, and cancels the endpoint when its client
    disconnects before the answer."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            receiver = _Receiver(request.receive, bodiless=_declares_no_body(request))
            # The endpoint runs in this task (its dependencies enter and leave their contexts here); a watcher
            # beside it cancels this task when the client goes, as long as the endpoint is still running.
            endpoint = asyncio.current_task()
            assert endpoint is not None
            running = True

            def client_left(watcher: asyncio.Future[None]) -> None:
                if running and not watcher.cancelled() and watcher.exception() is None:
                    endpoint.cancel()

            gone = asyncio.ensure_future(receiver.until_disconnect())
            gone.add_done_callback(client_left)
            try:
                return await handle(Request(request.scope, receiver.receive))
            except asyncio.CancelledError:
                if not receiver.disconnected or endpoint.uncancel() > 0:
                    raise  # cancelled from outside (shutting down), not (only) by the client leaving
                raise api_error(ClientGone()) from None
            except QUERY_ERRORS as exc:
                raise api_error(exc) from exc
            finally:
                running = False
                gone.cancel()

        return handler
