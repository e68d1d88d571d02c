"""Liquid templates: personalisation, defaults for missing values, sandbox limits, errors that name the problem."""

from __future__ import annotations

import pytest

from tapwire_messaging.templates import TemplateError, compile_content


def test_personalises_with_defaults_for_missing_values() -> None:
    content = compile_content(
        {
            "subject": 'Hi {{ Profile.Name | default: "there" }}',
            "body": "Total {{ Event.Amount }}.",
            "badge": 3,
        }
    )
    assert content.render({"Profile": {"Name": "Ann"}, "Event": {"Amount": 12}}) == {
        "subject": "Hi Ann",
        "body": "Total 12.",
    }
    assert content.render({"Profile": {}, "Event": {}}) == {"subject": "Hi there", "body": "Total ."}


def test_html_fields_escape_profile_values() -> None:
    content = compile_content({"html": "<p>{{ Profile.Name }}</p>"})
    assert content.render({"Profile": {"Name": "<b>x</b>"}}) == {"html": "<p>&lt;b&gt;x&lt;/b&gt;</p>"}


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("{{ Profile.Name | shout }}", "unknown filter 'shout'"),
        ("{% if %}x{% endif %}", "missing expression"),
        ('{% include "secrets" %}', "cannot include"),
        ("{{ Profile.Name ", "expected '}}'"),
        ("{% for i in (1..100000000) %}x{% endfor %}", "loop iteration limit"),
    ],
)
def test_bad_templates_are_refused_naming_field_and_problem(source: str, problem: str) -> None:
    with pytest.raises(TemplateError, match=r"content\.body") as caught:
        compile_content({"subject": "fine", "body": source})
    assert problem in str(caught.value)
