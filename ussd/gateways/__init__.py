"""USSD gateway adapters: each turns its aggregator's callback into a `Hop` and a
`Screen` into its aggregator's answer. Adding a gateway is one module here plus one
line in GATEWAYS.
"""
from __future__ import annotations

from ussd.gateways import africastalking, hubtel
from ussd.gateways.base import BadCallback, Gateway, Hop

GATEWAYS: dict[str, Gateway] = {
    africastalking.GATEWAY.name: africastalking.GATEWAY,
    hubtel.GATEWAY.name: hubtel.GATEWAY,
}

__all__ = ["GATEWAYS", "BadCallback", "Gateway", "Hop"]
