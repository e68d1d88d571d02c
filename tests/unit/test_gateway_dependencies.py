"""The gateway's routes resolve their dependencies on the event loop: FastAPI runs a plain ``def`` dependency
in its thread pool, a thread hop (and a wait for a free worker thread) on every request."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from tapwire_ingest.http.identity import router as identity_router
from tapwire_ingest.http.mobile_sdk import router as mobile_sdk_router
from tapwire_ingest.http.segment import router as segment_router
from tapwire_ingest.http.upload import router as upload_router
from tapwire_ingest.http.websdk import router as websdk_router


def dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for dependency in dependant.dependencies:
        yield dependency
        yield from dependencies(dependency)


def test_no_ingestion_route_has_a_dependency_that_runs_in_the_thread_pool() -> None:
    routers = (upload_router, segment_router, identity_router, websdk_router, mobile_sdk_router)
    checked = 0
    for router in routers:
        for route in router.routes:
            if not isinstance(route, APIRoute):
                continue
            for dependency in dependencies(route.dependant):
                call = dependency.call
                assert call is not None
                assert inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call), (
                    f"{route.path}: {call.__qualname__} is a plain function"
                )
                checked += 1
    assert checked  # the upload route alone names the context and the account
