"""Where a webhook may go: the SSRF guard.

A ``webhook_url`` whose host is, or resolves to, an address that is not public
unicast (loopback, private, link-local, shared 100.64/10, the cloud metadata
addresses, unspecified, multicast, reserved, documentation) is refused: with a 400
when the request is created, and again at every delivery attempt. At delivery the
host is resolved once, every address is checked, and the connection goes to a
checked address (the URL's host replaced by it; the Host header and the TLS server
name keep the original name), so a DNS answer that changes between the check and
the connect (rebinding) cannot point the POST elsewhere.

``MDR_WEBHOOK_ALLOW_PRIVATE=1`` allows loopback, private and link-local targets, for
development and the tests; metadata, unspecified and multicast addresses stay refused.
Both checks parse the URL with httpx, the parser that sends the POST, so the host
checked is the host connected to.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from dataclasses import dataclass

import httpx

from mdr_reporting.domain.errors import InvalidInput

__all__ = [
    "BlockedTarget",
    "PinnedTarget",
    "UnresolvedTarget",
    "address_problem",
    "check_new_webhook_url",
    "pin_target",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
CREATE_RESOLVE_SECONDS = 2.0  # a create never waits longer than this on DNS


class BlockedTarget(Exception):
    """The target is not allowed (a permanent failure); the message says why."""


class UnresolvedTarget(Exception):
    """The host did not resolve (may be temporary: retried)."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(ip: IPAddress, *, allow_private: bool = False) -> str | None:
    """Why a webhook may not be sent to ``ip``, or None when it may."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            problem = address_problem(inner, allow_private=allow_private)
            if problem is not None:
                return problem
    if ip in METADATA:
        return "a cloud metadata address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if allow_private:
        return None
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "not a public address"
    return None


def _parse(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise BlockedTarget("webhook_url is not a valid URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.raw_host:
        raise BlockedTarget("webhook_url must be an absolute http or https URL")
    return parsed


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, in the resolver's order."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UnresolvedTarget(f"could not resolve {host}: {reason}") from None
    found: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).partition("%")[0])
        if ip not in found:
            found.append(ip)
    if not found:
        raise UnresolvedTarget(f"could not resolve {host}: no address")
    return found


def _resolve_within(host: str, port: int, seconds: float) -> list[IPAddress]:
    """:func:`_resolve`, given up after ``seconds`` (UnresolvedTarget); the lookup goes on
    in a daemon thread that ends with it."""
    found: list[list[IPAddress]] = []

    def lookup() -> None:
        with contextlib.suppress(UnresolvedTarget):
            found.append(_resolve(host, port))

    thread = threading.Thread(target=lookup, name="mdr-dns", daemon=True)
    thread.start()
    thread.join(seconds)
    if not found:
        raise UnresolvedTarget(f"could not resolve {host} within {seconds:g} s")
    return found[0]


def _check(host: str, addresses: list[IPAddress], allow_private: bool) -> None:
    for ip in addresses:
        problem = address_problem(ip, allow_private=allow_private)
        if problem is not None:
            shown = host if str(ip) == host else f"{host} ({ip})"
            raise BlockedTarget(
                f"webhook_url's host {shown} is {problem}: webhooks are only sent to public "
                "internet addresses"
            )


def check_new_webhook_url(url: str, *, allow_private: bool) -> None:
    """The create-time check: InvalidInput (400, pointer /webhook_url) for a refused target.

    A name that does not resolve within a short time is accepted (DNS may be down for a
    moment, or the name not published yet): every delivery attempt checks again."""
    try:
        parsed = _parse(url)
        host = parsed.host
        try:
            addresses = _resolve_within(host, parsed.port or 0, CREATE_RESOLVE_SECONDS)
        except UnresolvedTarget:
            return
        _check(host, addresses, allow_private)
    except BlockedTarget as exc:
        raise InvalidInput(str(exc), pointer="/webhook_url") from None


@dataclass(frozen=True)
class PinnedTarget:
    """Where to connect (the URL with a checked address for its host) and what to send."""

    url: httpx.URL
    host_header: str
    sni_hostname: str | None
    host: str  # the name, for logs (never the whole URL: its query may hold a secret)


def pin_target(url: str, *, allow_private: bool) -> PinnedTarget:
    """Resolve once, check every address, and aim at the first; BlockedTarget for a refused
    target, UnresolvedTarget when the name does not resolve now."""
    parsed = _parse(url)
    host = parsed.host
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = _resolve(host, port)
    _check(host, addresses, allow_private)
    named = _literal(host) is None and parsed.scheme == "https"
    return PinnedTarget(
        url=parsed.copy_with(host=str(addresses[0])),
        host_header=parsed.netloc.decode("ascii"),
        sni_hostname=parsed.raw_host.decode("ascii") if named else None,
        host=host,
    )
