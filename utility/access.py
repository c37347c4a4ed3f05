"""Who may call Guichet's webhooks.

Africa's Talking signs nothing: whoever can reach the USSD endpoint can pose as any
phone (list its accounts, read its payments, send payment prompts to it). So a gateway's
callbacks can be required to carry a secret that only the gateway's dashboard knows (in
the callback URL, ``?token=...``, or an ``X-Guichet-Token`` header) and/or to come from
the gateway's networks. Both are off until configured, which suits a laptop; `guichet
serve` says so loudly.

- ``CALLBACK_TOKEN``: one secret for every gateway, or ``{"africastalking": "...", ...}``.
- ``GATEWAY_IPS``: CIDRs (``"196.201.214.0/24, 41.0.0.1"``, or a list), or per gateway.
- ``TRUSTED_PROXIES``: CIDRs of the reverse proxies in front of us. Only a request that
  reaches us from one of them has its ``X-Forwarded-For`` believed: the client is the
  right-most address in it that is not a trusted proxy. Anyone else's header is ignored,
  so a caller cannot claim a gateway's address by writing the header itself.
"""
from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask, Request

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

TOKEN_PARAMETER = "token"
TOKEN_HEADER = "X-Guichet-Token"


def parse_networks(value: Any) -> tuple[Network, ...]:
    """``"196.201.214.0/24, 41.0.0.1"`` or a list of those, as networks (ValueError if bad)."""
    if not value:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(ipaddress.ip_network(str(item).strip(), strict=False) for item in items if str(item).strip())


def _address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def client_address(request: Request, trusted_proxies: tuple[Network, ...]) -> Address | None:
    """The address the request came from, looking through trusted proxies only; None
    when it cannot be told (a malformed forwarded address)."""
    peer = _address(request.remote_addr or "")
    if peer is None or not any(peer in proxy for proxy in trusted_proxies):
        return peer
    hops = [hop for header in request.headers.getlist("X-Forwarded-For") for hop in header.split(",")]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return None
        if not any(address in proxy for proxy in trusted_proxies):
            return address
        peer = address
    return peer  # every hop is a proxy of ours: the request started inside


PROXIES = "guichet.access.proxies"


def trusted_proxies(app: Flask) -> tuple[Network, ...]:
    """TRUSTED_PROXIES, parsed once per app."""
    proxies: tuple[Network, ...] | None = app.extensions.get(PROXIES)
    if proxies is None:
        proxies = app.extensions[PROXIES] = parse_networks(app.config["TRUSTED_PROXIES"])
    return proxies


def source(request: Request, proxies: tuple[Network, ...]) -> str:
    """Where a request comes from, as text: the peer's address, or with TRUSTED_PROXIES the
    client's as a trusted proxy forwards it (client_address); the peer's when that cannot
    be told. Without proxies configured nothing is parsed: this is on every hop's path."""
    peer = request.remote_addr or ""
    if not proxies:
        return peer
    address = client_address(request, proxies)
    return peer if address is None else str(address)


def _per_gateway(value: Any, gateway: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(gateway)
    return value


@dataclass(frozen=True)
class GatewayAccess:
    """The rules for one gateway's callbacks."""

    token: str | None
    networks: tuple[Network, ...]
    proxies: tuple[Network, ...]

    @classmethod
    def from_config(cls, config: Mapping[str, Any], gateway: str) -> GatewayAccess:
        token = _per_gateway(config.get("CALLBACK_TOKEN"), gateway)
        return cls(
            token=str(token) if token not in (None, "") else None,
            networks=parse_networks(_per_gateway(config.get("GATEWAY_IPS"), gateway)),
            proxies=parse_networks(config.get("TRUSTED_PROXIES")),
        )

    @property
    def open(self) -> bool:
        return self.token is None and not self.networks

    def refusal(self, request: Request) -> str | None:
        """Why ``request`` may not act for this gateway (None: it may)."""
        if self.networks:
            address = client_address(request, self.proxies)
            if address is None or not any(address in network for network in self.networks):
                return "source address not allowed"
        if self.token is not None:
            presented = request.headers.get(TOKEN_HEADER) or request.args.get(TOKEN_PARAMETER) or ""
            # Bytes: compare_digest refuses non-ASCII str, and a caller may send anything.
            if not hmac.compare_digest(presented.encode("utf-8", "replace"), self.token.encode()):
                return "missing or wrong callback token"
        return None
