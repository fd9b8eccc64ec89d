"""Sign-in and sign-out pages.

Sign-in takes an admin key in a POST body (never in a URL) and answers with the session
cookie: ``HttpOnly``, ``SameSite=Strict``, ``Path=/console``, a ``Max-Age``, and ``Secure``
when the request came over TLS. The sign-in form itself carries a CSRF token, double-submitted
in a short-lived cookie, so another site cannot sign a browser in with its own key.
"""

from __future__ import annotations

import logging
import secrets

from aiohttp import web

from bridge.console.plumbing import (
    COOKIE,
    PREFIX,
    STATE_KEY,
    action,
    redirect,
    render,
)
from bridge.console.sessions import key_matches, tokens_equal

__all__ = ["add_auth_routes", "safe_next"]

log = logging.getLogger(__name__)

_SIGNIN_COOKIE = "pb_console_signin"
_SIGNIN_TTL_S = 1800


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a console path only (no open redirect)."""
    if (
        value
        and (value == PREFIX or value.startswith(PREFIX + "/"))
        and "\\" not in value
        and "//" not in value
    ):
        return value
    return PREFIX + "/"


def _signin_page(
    request: web.Request, *, error: str | None, status: int, next_: str | None
) -> web.Response:
    token = secrets.token_urlsafe(32)
    response = render(
        request,
        "signin.html",
        {
            "title": "Sign in",
            "signin_csrf": token,
            "next": safe_next(next_),
            "error": error,
        },
        status=status,
    )
    response.set_cookie(
        _SIGNIN_COOKIE,
        token,
        max_age=_SIGNIN_TTL_S,
        path=PREFIX,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    return response


async def signin_form(request: web.Request) -> web.Response:
    return _signin_page(request, error=None, status=200, next_=request.query.get("next"))


async def signin(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    form = await request.post()
    given_csrf = form.get("signin_csrf")
    cookie_csrf = request.cookies.get(_SIGNIN_COOKIE, "")
    if not cookie_csrf or not tokens_equal(
        given_csrf if isinstance(given_csrf, str) else None, cookie_csrf
    ):
        return render(
            request,
            "error.html",
            {"title": "Form refused", "message": "This form is stale or forged: reload it."},
            status=403,
        )
    key = form.get("key")
    nxt = form.get("next")
    next_ = nxt if isinstance(nxt, str) else None
    client = request.remote or "?"
    if not state.throttle.allowed(client, state.now()):
        log.warning("console: sign-in from %s throttled after repeated wrong keys", client)
        return _signin_page(
            request, error="Too many wrong keys: wait a minute.", status=429, next_=next_
        )
    if not isinstance(key, str) or not key_matches(key.strip(), state.keys):
        state.throttle.failed(client, state.now())
        log.warning("console: sign-in refused from %s", client)
        return _signin_page(request, error="That is not an admin key.", status=401, next_=next_)
    token, session = state.sessions.create(state.now())
    log.info("console: operator signed in from %s", request.remote)
    response = redirect(safe_next(next_))
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(session.expires_at - state.now()),
        path=PREFIX,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    response.del_cookie(_SIGNIN_COOKIE, path=PREFIX)
    return response


@action
async def signout(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    state.sessions.end(request.cookies.get(COOKIE))
    log.info("console: operator signed out from %s", request.remote)
    response = redirect(request.app.router["console.signin"].url_for())
    response.del_cookie(COOKIE, path=PREFIX)
    return response


def add_auth_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(PREFIX + "/signin", signin_form, name="console.signin")
    r.add_post(PREFIX + "/signin", signin)
    r.add_post(PREFIX + "/signout", signout, name="console.signout")
