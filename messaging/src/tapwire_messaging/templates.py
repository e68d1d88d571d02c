"""Liquid templates for message content, through python-liquid: sandboxed, bounded, validated up front.

Liquid has no access to Python attributes or the file system; this environment also has no loader (so
``include``/``render`` cannot read files) and caps loops, output size and nesting, so a template cannot stall a
sender. Missing values render as empty strings; ``| default: "…"`` supplies a fallback. Templates see
``Profile`` (profile properties plus ``Name``, ``Email`` …), ``Event`` (the triggering event's properties) and
``Campaign`` (``id``, ``name``, ``variant``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from liquid import BoundTemplate, Environment
from liquid.exceptions import LiquidError, TemplateNotFoundError


class TemplateError(ValueError):
    """A template that cannot be parsed or rendered; the message names the field, line and problem."""


class _SandboxedEnvironment(Environment):
    loop_iteration_limit = 10_000
    output_stream_limit = 256 * 1024
    context_depth_limit = 20
    local_namespace_limit = 64 * 1024


_ENV = _SandboxedEnvironment(autoescape=False)
_HTML_ENV = _SandboxedEnvironment(autoescape=True)

# What a validation render sees: every top-level name exists, with no values, so filters run on Undefined.
_SAMPLE: dict[str, Any] = {"Profile": {}, "Event": {}, "Campaign": {"id": 0, "name": "", "variant": "A"}}


class CompiledContent:
    """One variant's parsed templates, keyed by content field (``subject``, ``body``, ``title``, ``html`` …)."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        self._templates: dict[str, BoundTemplate] = {}
        for name, source in fields.items():
            env = _HTML_ENV if name == "html" else _ENV
            try:
                self._templates[name] = env.from_string(source)
            except LiquidError as exc:
                raise TemplateError(f"content.{name}: {_first_line(exc)}") from exc

    def render(self, context: Mapping[str, Any]) -> dict[str, str]:
        """Every field rendered against ``context``. Raises TemplateError (e.g. an unknown filter)."""
        rendered = {}
        for name, template in self._templates.items():
            try:
                rendered[name] = template.render(**context)
            except LiquidError as exc:
                raise TemplateError(f"content.{name}: {_first_line(exc)}") from exc
        return rendered


def compile_content(fields: Mapping[str, Any]) -> CompiledContent:
    """Parse and trial-render the string fields of ``fields``; raise TemplateError naming the first bad one.

    Non-string fields (platform parts, flags) are not templates and are left out.
    """
    compiled = CompiledContent({name: value for name, value in fields.items() if isinstance(value, str)})
    compiled.render(_SAMPLE)
    return compiled


def _first_line(exc: LiquidError) -> str:
    if isinstance(exc, TemplateNotFoundError):
        return "templates cannot include other templates"
    text = str(exc).strip()
    location = ""
    if "->" in text:
        head, _, rest = text.partition("->")
        text = head.strip()
        location = rest.strip().splitlines()[0].rsplit(" ", 1)[-1]
    return f"{text} (at {location})" if location else text
