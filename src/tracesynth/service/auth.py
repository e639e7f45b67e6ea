"""Bearer tokens, checked on every request (pages, API, static files, OpenAPI docs).

An ASGI middleware, so nothing can be routed around it. API clients send `Authorization: Bearer T`;
browsers sign in once on /login, which sets an HttpOnly, SameSite=Strict cookie holding the token.
The token names the user (`users.UserBook`); the routes see it as `request.state.user`.
"""
from __future__ import annotations

import json
from http.cookies import SimpleCookie
from typing import Any, Awaitable, Callable

from .users import SOLE_USER, UserBook

COOKIE = "tracesynth_token"
#: The only paths reachable without the token: the sign-in form itself.
OPEN_PATHS = ("/login",)

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable, Callable], Awaitable[None]]


def request_token(scope: Scope) -> str | None:
    """The token a request carries: bearer header first, then the sign-in cookie."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    if "cookie" in headers:
        cookie = SimpleCookie()
        try:
            cookie.load(headers["cookie"])
        except Exception:
            return None
        if COOKIE in cookie:
            return cookie[COOKIE].value
    return None


class TokenMiddleware:
    """Find the request's user (`scope["state"]["user"]`) or reject it: JSON 401 for the API, a sign-in
    page otherwise. With no users file and no shared token, every request is the sole (admin) user."""

    def __init__(self, app: ASGIApp, book: "UserBook", login_page: Callable[[str], str]):
        self.app, self.book, self.login_page = app, book, login_page

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        user = self.book.authenticate(request_token(scope)) if self.book.required else SOLE_USER
        if user is not None or scope["path"] in OPEN_PATHS:
            scope.setdefault("state", {})["user"] = user
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith("/api") or scope["path"] in ("/openapi.json", "/docs", "/redoc"):
            body = json.dumps({"detail": "missing or wrong token: send 'Authorization: Bearer <token>'"}).encode()
            ctype = b"application/json"
        else:
            body = self.login_page(scope["path"]).encode()
            ctype = b"text/html; charset=utf-8"
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode()),
                                (b"www-authenticate", b'Bearer realm="tracesynth"')]})
        await send({"type": "http.response.body", "body": body})
