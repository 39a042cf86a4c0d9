"""FLS callback bodies and their signatures (Agora NCS's scheme), for callbacks and the
publish webhook alike.

The receiver checks the raw body it got against two headers: `Agora-Signature`, hex
HMAC-SHA1 of the body keyed with the secret, and `Agora-Signature-V2`, hex HMAC-SHA256.
So the body is made once, as bytes, and the signatures are of exactly those bytes.
Documented test vector (tests/events/test_signing.py): secret `secret`, the 155-byte body
given there -> SHA1 `033c62f4...` and SHA256 `6d3320c6...`."""

from __future__ import annotations

import hashlib
import hmac
import json

PRODUCT_ID = 7  # Fusion Live Streaming, in NCS's productId
CONTENT_TYPE = "application/json;charset=utf-8"
SIGNATURE = "Agora-Signature"
SIGNATURE_V2 = "Agora-Signature-V2"


def signatures(body: bytes, secret: str) -> dict[str, str]:
    """The two signature headers of `body`."""
    key = secret.encode("utf-8")
    return {
        SIGNATURE: hmac.new(key, body, hashlib.sha1).hexdigest(),
        SIGNATURE_V2: hmac.new(key, body, hashlib.sha256).hexdigest(),
    }


def verify(body: bytes, secret: str, signature: str | None, signature_v2: str | None) -> bool:
    """Whether the headers sign `body` with `secret` (V2 if given, else V1), compared in
    constant time: what a receiver does."""
    expected = signatures(body, secret)
    if signature_v2 is not None:
        return hmac.compare_digest(expected[SIGNATURE_V2], signature_v2.lower())
    if signature is not None:
        return hmac.compare_digest(expected[SIGNATURE], signature.lower())
    return False


def notice_body(notice_id: str, event_type: int, payload_json: str, notify_ms: int) -> bytes:
    """The callback body `{"noticeId", "productId": 7, "eventType", "notifyMs", "payload"}`
    with the payload as it was enqueued (JSON text of an object), UTF-8."""
    return (
        f'{{"noticeId":{json.dumps(notice_id)},"productId":{PRODUCT_ID},'
        f'"eventType":{int(event_type)},"notifyMs":{int(notify_ms)},"payload":{payload_json}}}'
    ).encode()
