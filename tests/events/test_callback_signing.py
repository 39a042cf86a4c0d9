"""Callback signatures: the documented NCS test vector, and the body liverec signs."""

from __future__ import annotations

import json

from liverec.events import CONTENT_TYPE, notice_body, signatures, verify

# FLS-REFERENCE.md section 7: Agora's documented vector (secret `secret`, this exact body).
VECTOR_BODY = (
    b'{"eventMs":1560408533119,"eventType":10,"noticeId":"4eb720f0-8da7-11e9-a43e-53f411c2761f",'
    b'"notifyMs":1560408533119,"payload":{"a":"1","b":2},"productId":1}'
)
VECTOR_SHA1 = "033c62f40f687675f17f0f41f91a40c71c0f134c"
VECTOR_SHA256 = "6d3320c60b11101395b7fc8f9068748808a0aa1bfa064438e39d1bc2c7d74d99"


def test_the_documented_test_vector() -> None:
    assert len(VECTOR_BODY) == 155
    assert signatures(VECTOR_BODY, "secret") == {
        "Agora-Signature": VECTOR_SHA1,
        "Agora-Signature-V2": VECTOR_SHA256,
    }
    assert verify(VECTOR_BODY, "secret", VECTOR_SHA1, VECTOR_SHA256)
    assert verify(VECTOR_BODY, "secret", VECTOR_SHA1, None)
    assert verify(VECTOR_BODY, "secret", None, VECTOR_SHA256.upper())
    assert not verify(VECTOR_BODY, "other", VECTOR_SHA1, VECTOR_SHA256)
    assert not verify(VECTOR_BODY + b" ", "secret", VECTOR_SHA1, VECTOR_SHA256)
    assert not verify(VECTOR_BODY, "secret", None, None)


def test_the_body_has_the_documented_fields_in_order_and_is_what_is_signed() -> None:
    payload = json.dumps({"eventName": "publish_start", "streamName": "caméra"}, ensure_ascii=False)
    body = notice_body("n-1", 1, payload, 1_700_000_000_123)
    parsed = json.loads(body)
    assert list(parsed) == ["noticeId", "productId", "eventType", "notifyMs", "payload"]
    assert parsed == {
        "noticeId": "n-1",
        "productId": 7,
        "eventType": 1,
        "notifyMs": 1_700_000_000_123,
        "payload": {"eventName": "publish_start", "streamName": "caméra"},
    }
    assert "caméra".encode() in body  # UTF-8, as the Content-Type says
    assert CONTENT_TYPE == "application/json;charset=utf-8"
    headers = signatures(body, "s3cret")
    assert verify(body, "s3cret", headers["Agora-Signature"], headers["Agora-Signature-V2"])
