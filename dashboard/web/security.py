"""Defence in depth for pages: a per-request CSP nonce, so only the app's own scripts and assets run."""

from __future__ import annotations

import secrets

from flask import Flask, Response, g

from dashboard.web.config import map_options, tile_origin


def init_app(app: Flask) -> None:
    """Add the security headers to every response and `csp_nonce()` to templates."""
    tiles = tile_origin(map_options(app.config).tile_url)
    img_src = " ".join(s for s in ("'self'", "data:", tiles) if s)

    @app.after_request
    def _headers(response: Response) -> Response:
        nonce = g.get("csp_nonce")
        scripts = f"'self' 'nonce-{nonce}'" if nonce else "'self'"
        response.headers.setdefault(
            "Content-Security-Policy",
            f"default-src 'self'; script-src {scripts}; style-src 'self' 'unsafe-inline'; "
            f"img-src {img_src}; font-src 'self'; connect-src 'self'; object-src 'none'; "
            "base-uri 'none'; frame-ancestors 'self'; form-action 'self'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    app.jinja_env.globals["csp_nonce"] = csp_nonce


def csp_nonce() -> str:
    """This request's script nonce, made on first use."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(18)
    return g.csp_nonce
