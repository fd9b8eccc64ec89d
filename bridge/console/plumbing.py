"""The console's plumbing: its state on the app, the sign-in guard, CSRF checks, rendering.

Every page handler is wrapped by :func:`page` (GET: a session, else a redirect to sign-in) or
:func:`action` (POST: a session *and* the form's CSRF token, else 403 and nothing changed).
Pages are rendered by aiohttp-jinja2 with autoescaping on; every response carries a strict
Content-Security-Policy (no scripts at all) and ``Cache-Control: no-store``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from multidict import MultiDict, MultiDictProxy
from yarl import URL

from bridge.console.sessions import Session, SessionStore, SigninThrottle, tokens_equal

if TYPE_CHECKING:
    from bridge.served import ServedBridge

__all__ = [
    "COOKIE",
    "JINJA_KEY",
    "PREFIX",
    "STATE_KEY",
    "ConsoleState",
    "action",
    "form_of",
    "page",
    "redirect",
    "render",
    "secure_headers",
    "session_of",
    "setup_templates",
]

PREFIX = "/console"
COOKIE = "pb_console"
JINJA_KEY: web.AppKey[jinja2.Environment] = web.AppKey("paybridge.console.jinja")
_SESSION: web.RequestKey[Session] = web.RequestKey("paybridge.console.session")
_FORM: web.RequestKey[MultiDictProxy[str]] = web.RequestKey("paybridge.console.form")
_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
    " frame-ancestors 'none'; base-uri 'none'"
)
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(slots=True)
class ConsoleState:
    """What the console handlers share: the bridge, the admin keys and the sessions."""

    bridge: ServedBridge
    keys: list[bytes]
    sessions: SessionStore
    throttle: SigninThrottle = field(default_factory=SigninThrottle)

    def now(self) -> float:
        return self.bridge.clock()


STATE_KEY: web.AppKey[ConsoleState] = web.AppKey("paybridge.console.state")


def session_of(request: web.Request) -> Session:
    """The signed-in session of a request that passed :func:`page` or :func:`action`."""
    return request[_SESSION]


def form_of(request: web.Request) -> MultiDictProxy[str]:
    """The form fields of a POST that passed :func:`action` (already read and checked)."""
    return request[_FORM]


def redirect(location: str | URL) -> web.Response:
    """A 303 to ``location`` (after a POST, the browser GETs it)."""
    response = web.Response(status=303, headers={"Location": str(location)})
    secure_headers(response)
    return response


def _signin_redirect(request: web.Request) -> web.Response:
    target = request.rel_url.path_qs if request.method == "GET" else PREFIX + "/"
    return redirect(request.app.router["console.signin"].url_for().with_query({"next": target}))


def _current(request: web.Request) -> Session | None:
    state = request.app[STATE_KEY]
    return state.sessions.get(request.cookies.get(COOKIE), state.now())


def page(handler: _Handler) -> _Handler:
    """A GET page: signed-in operators only, the others are sent to sign in."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        session = _current(request)
        if session is None:
            return _signin_redirect(request)
        request[_SESSION] = session
        return await handler(request)

    return guarded


def action(handler: _Handler) -> _Handler:
    """A state-changing POST: a session and the form's ``csrf`` field matching it, else 403
    (a forged or stale form) before the handler runs."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        session = _current(request)
        if session is None:
            return _signin_redirect(request)
        form = await request.post()
        token = form.get("csrf")
        if not tokens_equal(token if isinstance(token, str) else None, session.csrf):
            return render(
                request,
                "error.html",
                {"title": "Form refused", "message": "This form is stale or forged: reload it."},
                status=403,
            )
        request[_SESSION] = session
        request[_FORM] = MultiDictProxy(_text_fields(form))
        return await handler(request)

    return guarded


def _text_fields(form: MultiDictProxy[Any]) -> MultiDict[str]:
    """The text fields of a form (uploads are not part of any console form)."""
    return MultiDict((k, v) for k, v in form.items() if isinstance(v, str))


def secure_headers(response: web.StreamResponse) -> web.StreamResponse:
    """Headers every console response carries."""
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def render(
    request: web.Request, template: str, context: dict[str, Any], *, status: int = 200
) -> web.Response:
    """Render ``template`` with ``context`` plus the session's CSRF token (as ``csrf``)."""
    session = request.get(_SESSION) or _current(request)
    ctx = {"csrf": session.csrf if session else "", "signed_in": session is not None, **context}
    response = aiohttp_jinja2.render_template(
        template, request, ctx, app_key=JINJA_KEY, status=status
    )
    secure_headers(response)
    return response


def _ts(value: float | int | None) -> str:
    if value is None:
        return "—"
    return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s // size} {unit}"
    return f"{s} s"


def setup_templates(app: web.Application) -> None:
    """The console's Jinja2 environment (templates are package data), autoescaping on."""
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("bridge.console", "templates"),
        app_key=JINJA_KEY,
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        filters={"ts": _ts, "age": _age},
    )
