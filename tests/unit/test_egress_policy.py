"""Which addresses customer-supplied URLs may reach, the operator's allow-list, and the check when a URL is saved."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from tapwire_core.egress import EgressPolicy, UnsafeUrl, check_url, refusal


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local (cloud metadata)"),
        ("169.254.0.1", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.10", "documentation"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fd00:ec2::254", "unique local"),
        ("fc00::1", "unique local"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback, inside an IPv6 address"),
        ("::ffff:169.254.169.254", "link-local (cloud metadata), inside an IPv6 address"),
        ("::ffff:10.0.0.1", "private, inside an IPv6 address"),
        ("64:ff9b::a9fe:a9fe", "link-local (cloud metadata), inside an IPv6 address"),
        ("64:ff9b::7f00:1", "loopback, inside an IPv6 address"),
        ("2002:7f00:1::1", "loopback, inside an IPv6 address"),
        ("2002:a9fe:a9fe::", "link-local (cloud metadata), inside an IPv6 address"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
        ("::7f00:1", "IPv4-compatible"),
        ("64:ff9b:1::1", "local-use NAT64"),
        ("2001:db8::1", "documentation"),
    ],
)
def test_internal_addresses_are_refused_with_their_kind(address: str, kind: str) -> None:
    reason = refusal(address)
    assert reason is not None and reason.startswith(kind), reason


@pytest.mark.parametrize(
    "address",
    [
        "93.184.215.14",
        "8.8.8.8",
        "100.128.0.1",
        "172.32.0.1",
        "2606:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ],
)
def test_public_addresses_are_reachable(address: str) -> None:
    assert refusal(address) is None


def test_the_allow_list_takes_cidrs_addresses_hosts_and_suffixes() -> None:
    policy = EgressPolicy.parse("10.20.0.0/16, 127.0.0.1 hooks.internal .svc.cluster.local [fd00::1]")
    assert policy.refusal("anything", ip_address("10.20.3.4")) is None
    assert policy.refusal("anything", ip_address("::ffff:10.20.3.4")) is None
    assert policy.refusal("anything", ip_address("127.0.0.1")) is None
    assert policy.refusal("anything", ip_address("fd00::1")) is None
    assert policy.refusal("x", ip_address("127.0.0.2")) == "127.0.0.2 is loopback"
    assert policy.refusal("x", ip_address("10.21.0.1")) == "10.21.0.1 is private"
    assert policy.refusal("HOOKS.internal.", ip_address("10.99.0.1")) is None
    assert policy.refusal("relay.tools.svc.cluster.local", ip_address("10.99.0.1")) is None
    assert policy.refusal("svc.cluster.local.evil.example", ip_address("10.99.0.1")) is not None
    assert policy.refusal("x", ip_address("169.254.169.254")) is not None


def test_the_default_policy_allows_nothing_internal() -> None:
    assert EgressPolicy.parse(None) == EgressPolicy.parse("") == EgressPolicy()
    assert EgressPolicy().refusal("localhost", ip_address("127.0.0.1")) == "127.0.0.1 is loopback"


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "not a host!", "http://x", "a..b"])
def test_a_malformed_allow_list_entry_is_named(entry: str) -> None:
    with pytest.raises(ValueError, match="TAPWIRE_EGRESS_ALLOW"):
        EgressPolicy.parse(f"127.0.0.1/32,{entry}")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://hooks.example/x", "http:// or https://"),
        ("gopher://127.0.0.1:11211/", "http:// or https://"),
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:169.254.169.254]/", "cloud metadata"),
        ("http://10.0.0.5/", "private"),
        ("http://100.64.1.1/", "carrier-grade NAT"),
        ("http://0.0.0.0:8080/", "unspecified"),
        ("http://localhost:8080/", "this machine"),
        ("http://admin.localhost/", "this machine"),
        ("http://LOCALHOST.:8080/", "this machine"),
        ("http:///path", "names no host"),
        ("http://hooks.example:99999/", "not a valid URL"),
        ("http://hooks.example/a b", "without spaces"),
        (42, "http:// or https://"),
    ],
)
def test_a_saved_url_leading_inside_is_refused_at_once(url: object, problem: str) -> None:
    with pytest.raises(UnsafeUrl, match=problem):
        check_url(url)


def test_a_saved_url_to_a_public_name_or_an_allowed_address_passes() -> None:
    assert check_url("https://hooks.shop.example/tapwire?x=1") == "https://hooks.shop.example/tapwire?x=1"
    assert check_url("https://8.8.8.8/hook") == "https://8.8.8.8/hook"
    allowed = EgressPolicy.parse("127.0.0.1/32 localhost")
    assert check_url("http://127.0.0.1:8080/hook", allowed) == "http://127.0.0.1:8080/hook"
    assert check_url("http://localhost:8080/hook", allowed) == "http://localhost:8080/hook"
