"""Gzip responses for slow village links; a small after_request hook instead of another dependency."""

from __future__ import annotations

import gzip

from flask import Flask, Response, request

MIN_SIZE = 1024  # below this the gzip header and CPU cost outweigh the saving
COMPRESSIBLE = (
    "text/",
    "application/json",
    "application/javascript",
    "application/xml",
    "image/svg+xml",
)


def init_app(app: Flask) -> None:
    """Compress every large enough, compressible response when the client accepts gzip."""
    app.after_request(compress)


def compress(response: Response) -> Response:
    """Gzip `response` in place if it qualifies; always say the answer varies by Accept-Encoding."""
    if not _is_compressible(response):
        return response
    response.vary.add("Accept-Encoding")
    if request.accept_encodings.quality("gzip") <= 0:
        return response
    if response.content_length is not None and response.content_length < MIN_SIZE:
        return response
    response.direct_passthrough = False  # static files are streamed; read them to compress them
    streamed = response.response
    data = response.get_data()
    close = getattr(streamed, "close", None)
    if close is not None:  # read whole: close the file now, not when a dropped response is collected
        close()
    if len(data) < MIN_SIZE:
        return response
    response.set_data(gzip.compress(data, compresslevel=6))
    response.headers["Content-Encoding"] = "gzip"
    etag, weak = response.get_etag()
    if etag and not weak:
        response.set_etag(etag, weak=True)  # the bytes differ from the uncompressed representation
    return response


def _is_compressible(response: Response) -> bool:
    if response.status_code != 200 or "Content-Encoding" in response.headers:
        return False
    if response.headers.get("Content-Range") or (response.is_streamed and not response.direct_passthrough):
        return False
    mimetype = response.mimetype or ""
    return mimetype.startswith(COMPRESSIBLE) or mimetype.endswith(("+json", "+xml"))
