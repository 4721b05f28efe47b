"""The CORS fast path adds exactly what Starlette's middleware adds without an Origin: Vary."""

from __future__ import annotations

from orchlog.api.cors import with_vary_origin


def test_vary_origin_is_added() -> None:
    assert with_vary_origin([(b"content-type", b"application/json")]) == [
        (b"content-type", b"application/json"),
        (b"vary", b"Origin"),
    ]


def test_an_existing_vary_is_kept_in_one_header() -> None:
    out = with_vary_origin([(b"Vary", b"Accept-Encoding"), (b"x", b"1")])
    assert out == [(b"x", b"1"), (b"vary", b"Accept-Encoding, Origin")]
