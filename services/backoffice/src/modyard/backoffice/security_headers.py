"""Headers every backoffice response carries, and the CSRF nonce cookie.

The pages load only their own vendored files (htmx, backoffice.js, backoffice.css) and hold no
inline script or style, so the Content-Security-Policy allows ``'self'`` and nothing else: an
injected ``<script>`` or ``onclick=`` does not run, and the pages cannot be framed
(clickjacking), sniffed into another type, or leak their URLs (which can name modules, flows and
workspaces) to other sites through ``Referer``.
"""

from __future__ import annotations

from http.cookies import SimpleCookie

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modyard.backoffice.csrf import CSRF_COOKIE, new_nonce

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def cookie_header(name: str, value: str, *, secure: bool) -> str:
    """A console cookie: out of page scripts' reach, never sent by another site's page."""
    cookie: SimpleCookie = SimpleCookie()
    cookie[name] = value
    cookie[name]["path"] = "/"
    cookie[name]["httponly"] = True
    cookie[name]["samesite"] = "strict"
    if secure:
        cookie[name]["secure"] = True
    return cookie.output(header="").strip()


class SecurityHeadersMiddleware:
    """Adds :data:`SECURITY_HEADERS` to every HTTP response, and issues the CSRF nonce cookie to
    a browser that has none (the page in that same response embeds tokens made from it)."""

    def __init__(self, app: ASGIApp, *, secure_cookies: bool) -> None:
        self.app = app
        self.secure_cookies = secure_cookies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        issued = None
        if not HTTPConnection(scope).cookies.get(CSRF_COOKIE):
            issued = new_nonce()
            scope.setdefault("state", {})["csrf_nonce"] = issued

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if issued is not None:
                    headers.append(
                        "set-cookie", cookie_header(CSRF_COOKIE, issued, secure=self.secure_cookies)
                    )
            await send(message)

        await self.app(scope, receive, send_with_headers)
