"""Liveness, readiness and metrics endpoints, common to every service."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from tapwire_core import metrics
from tapwire_core.http.auth import Context
from tapwire_core.http.errors import json_response

router = APIRouter()


@router.get("/healthz")
async def healthz() -> Response:
    """The process is up and its event loop answers. Says nothing about dependencies."""
    return json_response({"status": "ok"})


@router.get("/readyz")
async def readyz(context: Context) -> Response:
    """Every dependency the service cannot serve without is reachable and migrated; 503 naming what is not.

    An advisory check (``ServiceContext.advisory_checks``) is reported, and named under ``degraded`` when it fails,
    without taking the process out of service: e.g. a gateway whose database is down still serves every
    credential it has verified, and every replica shares that database, so failing them all would only turn a
    partial outage into a full one.
    """
    checks = await context.readiness()
    ready = all(ok for name, ok in checks.items() if name not in context.advisory_checks)
    body: dict[str, object] = {"status": "ok" if ready else "fail", "checks": checks}
    degraded = sorted(name for name in context.advisory_checks if checks.get(name) is False)
    if degraded:
        body["degraded"] = degraded
    return json_response(body, status=200 if ready else 503)


@router.get("/metrics")
async def prometheus_metrics() -> Response:
    return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
