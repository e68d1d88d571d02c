"""The ingress controller's own settings that tapwire's paths depend on, shipped as its Helm values."""

from __future__ import annotations

import re

import pytest
import yaml

from tapwire_core.settings import Settings
from tests.deploy import docs
from tests.deploy.manifests import K8S, OVERLAYS, ROOT, rendered

VALUES = K8S / "operators" / "ingress-nginx.values.yaml"
_SIZE = re.compile(r"(\d+)([km]?)", re.IGNORECASE)
# "GET " + "/a?" + " HTTP/1.1" around the query: nginx reads the whole request line into one buffer.
_REQUEST_LINE_OVERHEAD = len("GET /a? HTTP/1.1")


def _bytes(size: str) -> int:
    match = _SIZE.fullmatch(size.strip())
    assert match, f"not an nginx size: {size!r}"
    number, unit = int(match[1]), match[2].lower()
    return number * {"": 1, "k": 1024, "m": 1024 * 1024}[unit]


def _header_buffer_bytes() -> int:
    config = yaml.safe_load(VALUES.read_text())["controller"]["config"]
    count, size = config["large-client-header-buffers"].split()
    assert int(count) >= 2, "one buffer for the request line, others for the remaining headers"
    return _bytes(size)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_controller_passes_every_web_sdk_url_the_gateway_accepts(overlay: str) -> None:
    """A URL the gateway would accept must reach it: nginx answers 414 (not tapwire's JSON 413) past one buffer."""
    configured = rendered(overlay).config().get("TAPWIRE_SDK_MAX_QUERY_BYTES")
    max_query = int(configured) if configured else Settings().sdk_max_query_bytes
    assert _header_buffer_bytes() >= max_query + _REQUEST_LINE_OVERHEAD


def test_the_documented_install_uses_the_values_and_no_snippet_annotation_is_needed() -> None:
    relative = VALUES.relative_to(ROOT).as_posix()
    install = docs.section("1. Install the operators")
    assert re.search(rf"helm install ingress-nginx [^\n]*\\\n\s*-f {re.escape(relative)}", install), install
    for overlay in OVERLAYS:
        (ingress,) = rendered(overlay).of_kind("Ingress")
        annotations = ingress["metadata"].get("annotations", {})
        # Snippets are off by default on the controller (they let an Ingress inject nginx configuration).
        assert not any(name.endswith("-snippet") for name in annotations), annotations
