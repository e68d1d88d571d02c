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
    """Every dependency reachable and every migration applied; 503 naming what is not."""
    checks = await context.readiness()
    ready = all(checks.values())
    return json_response(
        {"status": "ok" if ready else "fail", "checks": checks}, status=200 if ready else 503
    )


@router.get("/metrics")
async def prometheus_metrics() -> Response:
    return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
