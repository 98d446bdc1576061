"""Why a message breaks the MQTT contract: the stable reason codes and `ProtocolError` (stdlib only).

Dead letters store the reason and ingest counts rejects by it: a code is part of the contract, never renamed.
"""

from __future__ import annotations

from typing import Literal

from gateway.contract.errors import InvalidInput

Reason = Literal[
    "topic_invalid",
    "payload_too_large",
    "not_utf8",
    "not_json",
    "not_object",
    "duplicate_key",
    "version_unsupported",
    "field_missing",
    "field_unknown",
    "field_type",
    "value_not_finite",
    "value_out_of_range",
    "unknown_metric",
    "slug_invalid",
    "ts_invalid",
    "ts_in_future",
    "ts_too_old",
    "device_mismatch",
]
# What only a federation fact or frame (gateway/contract/federation.py) can be refused for, besides the
# envelope reasons above; a device message never is.
FedReason = Literal[
    "origin_unknown",  # a fact from a node the federation file lists no key for
    "signature_invalid",  # a fact whose signature does not verify with its origin's key
    "fact_conflict",  # a fact whose (origin, seq) is held with other content, or sent in another's name
]


class ProtocolError(InvalidInput):
    """A message that breaks the contract; `reason` is a stable code, `detail` says what exactly."""

    def __init__(self, reason: Reason | FedReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: Reason | FedReason = reason
        self.detail = detail
