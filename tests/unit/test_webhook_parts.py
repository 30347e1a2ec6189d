"""The pieces of completion webhooks: the key pair, the SSRF rules, the backoff schedule."""

from __future__ import annotations

import base64
import ipaddress
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from mdr_reporting.settings import SettingsError, load_settings
from mdr_reporting.webhooks.deliverer import BACKOFF_CAP, retry_delay
from mdr_reporting.webhooks.keys import (
    KEY_FILE,
    SigningKeyError,
    WebhookSigner,
    verify_signature,
)
from mdr_reporting.webhooks.targets import BlockedTarget, address_problem, pin_target


def test_the_key_pair_is_made_once_owner_only_and_signs_timestamp_bar_body(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    signer = WebhookSigner.load(data)
    path = data / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "PRIVATE KEY" in path.read_text()
    again = WebhookSigner.load(data)
    assert again.public_json() == signer.public_json()  # the same key after a restart
    public = signer.public_json()["public_key"]
    signature = signer.sign(1700000000, b'{"id":"x"}')
    assert verify_signature(public, "1700000000", b'{"id":"x"}', signature)
    assert not verify_signature(public, "1700000001", b'{"id":"x"}', signature)
    assert not verify_signature(public, "1700000000", b'{"id":"y"}', signature)
    assert not verify_signature(public, "1700000000", b'{"id":"x"}', "bm90IGEgc2ln")


def test_a_configured_key_wins_in_either_spelling_and_a_bad_one_says_so(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes_raw()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    from_raw = WebhookSigner.load(tmp_path, base64.b64encode(raw).decode())
    from_pem = WebhookSigner.load(tmp_path, pem)
    assert from_raw.public_json() == from_pem.public_json()
    assert not (tmp_path / KEY_FILE).exists()  # nothing written when configured
    with pytest.raises(SigningKeyError, match="not an Ed25519 private key"):
        WebhookSigner.load(tmp_path, "not-a-key")
    with pytest.raises(SettingsError, match=r"^MDR_WEBHOOK_SIGNING_KEY: not an Ed25519 private"):
        load_settings(environ={"MDR_WEBHOOK_SIGNING_KEY": "bm90IGEga2V5"})
    given = base64.b64encode(raw).decode()
    settings = load_settings(environ={"MDR_WEBHOOK_SIGNING_KEY": given})
    assert settings.webhook_signing_key == given


@pytest.mark.parametrize(
    ("address", "problem", "allowed_when_private_allowed"),
    [
        ("93.184.216.34", None, True),
        ("2606:2800:220:1:248:1893:25c8:1946", None, True),
        ("127.0.0.1", "a loopback address", True),
        ("::1", "a loopback address", True),
        ("10.1.2.3", "a private address", True),
        ("172.16.0.1", "a private address", True),
        ("192.168.0.1", "a private address", True),
        ("fc00::1", "a private address", True),
        ("fe80::1", "a link-local address", True),
        ("169.254.169.254", "a cloud metadata address", False),
        ("fd00:ec2::254", "a cloud metadata address", False),
        ("::ffff:169.254.169.254", "a cloud metadata address", False),
        ("64:ff9b::a9fe:a9fe", "a cloud metadata address", False),  # NAT64 of it
        ("::ffff:127.0.0.1", "a loopback address", True),
        ("2002:0a00:0001::1", "a private address", True),  # 6to4 of 10.0.0.1
        ("0.0.0.0", "an unspecified address", False),
        ("::", "an unspecified address", False),
        ("239.1.1.1", "a multicast address", False),
        ("ff02::1", "a multicast address", False),
        ("240.0.0.1", "a reserved address", True),
        ("100.64.0.1", "not a public address", True),
    ],
)
def test_which_addresses_a_webhook_may_go_to(
    address: str, problem: str | None, allowed_when_private_allowed: bool
) -> None:
    ip = ipaddress.ip_address(address)
    assert address_problem(ip) == problem
    assert (address_problem(ip, allow_private=True) is None) == allowed_when_private_allowed


def test_the_connection_goes_to_the_checked_address_with_the_name_kept() -> None:
    pinned = pin_target("https://user@127.0.0.1:8443/a?b=1", allow_private=True)
    assert str(pinned.url) == "https://user@127.0.0.1:8443/a?b=1"
    assert pinned.host_header == "127.0.0.1:8443" and pinned.sni_hostname is None
    named = pin_target("https://localhost:8443/a", allow_private=True)
    assert named.url.host in {"127.0.0.1", "::1"} and named.host_header == "localhost:8443"
    assert named.sni_hostname == "localhost"  # TLS checks the name, not the address
    with pytest.raises(BlockedTarget, match="loopback"):
        pin_target("http://localhost/a", allow_private=False)
    with pytest.raises(BlockedTarget, match=r"not a valid URL|absolute"):
        pin_target("http://[::1/", allow_private=True)


def test_the_backoff_doubles_with_jitter_up_to_an_hour() -> None:
    base = timedelta(seconds=5)
    assert retry_delay(1, base, rng=lambda: 0.0) == timedelta(seconds=2.5)
    assert retry_delay(1, base, rng=lambda: 1.0) == timedelta(seconds=5)
    assert retry_delay(4, base, rng=lambda: 1.0) == timedelta(seconds=40)
    assert retry_delay(40, base, rng=lambda: 1.0) == BACKOFF_CAP
    waits = [retry_delay(n, base, rng=lambda: 1.0) for n in range(1, 40)]
    # about 30 attempts in the 24 hours of the default window
    assert 25 <= sum(1 for total in _running(waits) if total <= timedelta(hours=24)) <= 35


def _running(waits: list[timedelta]) -> list[timedelta]:
    total, out = timedelta(), []
    for wait in waits:
        total += wait
        out.append(total)
    return out


def test_the_webhook_settings_read_from_the_environment() -> None:
    settings = load_settings(
        environ={"MDR_WEBHOOK_ALLOW_PRIVATE": "1", "MDR_WEBHOOK_RETRY_HOURS": "2"}
    )
    assert settings.webhook_allow_private is True and settings.webhook_retry_hours == 2
    assert settings.webhook_timeout_seconds == 10 and settings.webhook_senders == 4
    assert load_settings(environ={}).webhook_allow_private is False
