"""The HTTP API server: aiohttp's web server on the broker's own event loop.

Owns: the aiohttp applications built from a route table (``routes.ROUTES``;
the same table drives the OpenAPI document; the main port also serves the web
console, ``broker.console``), their listening sites (plain or TLS), the gate
every request passes (the phase, the token on all but the public routes, the
cross-site rule, the read-only console's rule, the body limit checked on
``Content-Length`` before a byte of the body is read), the one error body for
every refusal, the backend owner that HTTP
requests run under, and the phases: ``STARTING`` until ``ready()`` (the
backend is still opening or replaying its log: every request but ``/healthz``
gets 503 ``unavailable``), ``SERVING``, and ``STOPPING`` from ``begin_stop()``
(every request gets 503 ``shutting_down``; waiting receives are answered by
the backend's drain). ``close()`` answers what is in flight, stops listening
and closes the owner; the TCP ``Server`` calls both at the right points of its
graceful stop (it knows this object only as a ``Frontend``).
Handlers are cancelled when their client goes away (``handler_cancellation``):
that is how a long poll notices its client closing while it waits.
Must never: know which backend it runs on (it sends typed requests through
``Backend.execute`` and encodes typed replies), or hold queue state.
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Mapping, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Final

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractResource

from broker.backend.base import Backend, Replies
from broker.config import Config
from broker.errors import (
    ShuttingDown,
    TooLarge,
    Unauthorized,
    Unavailable,
    WonderQError,
)
from broker.histogram import Histogram
from broker.http.auth import BearerAuth, HostGuard, cross_site_problem, read_only_problem
from broker.http.errors import error_response, forbidden, from_aiohttp, raise_for
from broker.http.openapi import document
from broker.protocol.replies import ReceiveReply, Reply
from broker.protocol.requests import AnyRequest, ReleaseReceipts
from broker.server.throttle import AuthThrottle, source_of

if TYPE_CHECKING:
    from broker.http.routes import Route

log = logging.getLogger("wonderq.http")

#: in-flight requests get this long to finish when the API closes
SHUTDOWN_S: Final = 2.0
_STARTING: Final = "the broker is starting (opening or replaying its data); try again shortly"
_STOPPING: Final = "the server is shutting down; the request was not applied"


class Phase(Enum):
    STARTING = "starting"
    SERVING = "serving"
    STOPPING = "stopping"


Histograms = Callable[[], Mapping[str, Histogram]]


def _no_histograms() -> Mapping[str, Histogram]:
    return {}


class HttpApi:
    """The HTTP API of one broker: its sites, its phase and its backend owner."""

    def __init__(
        self,
        config: Config,
        backend: Backend,
        *,
        ssl: ssl_module.SSLContext | None = None,
        histograms: Histograms = _no_histograms,
        throttle: AuthThrottle | None = None,
    ) -> None:
        """``throttle``: the failed-AUTH throttle of the TCP port, so that a source's
        wrong tokens count alike on both ports (None: none kept)."""
        self.config = config
        self.backend = backend
        self.ssl = ssl
        self.histograms = histograms
        self.auth = BearerAuth(config.token)
        self.throttle = throttle
        self.hosts = HostGuard([config.host, *config.http_hosts.split(",")])
        self.phase = Phase.STARTING
        self.peer = "http"  # the owner's address in STATS connections
        self.requests_served = 0
        self._owner: object = None
        self._runners: list[web.AppRunner] = []
        self._releasing: set[asyncio.Future[Replies]] = set()  # releases awaiting the backend

    @property
    def scheme(self) -> str:
        return "https" if self.ssl is not None else "http"

    # -------------------------------------------------------------- lifecycle

    async def listen(
        self, host: str, port: int, routes: Sequence[Route] | None = None
    ) -> tuple[str, int]:
        """Serve ``routes`` on ``host:port`` (default: every route, and the web console);
        the address bound."""
        console = routes is None
        if routes is None:
            from broker.http.routes import ROUTES

            routes = ROUTES
        runner = web.AppRunner(
            self._application(routes, console),
            handler_cancellation=True,
            access_log=None,
            shutdown_timeout=SHUTDOWN_S,
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=self.ssl, backlog=1024)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runners.append(runner)
        bound = runner.addresses[-1]
        log.info("%s on %s:%d", self.scheme, bound[0], bound[1])
        return str(bound[0]), int(bound[1])

    def ready(self) -> None:
        """The backend has started: serve requests."""
        if self.phase is Phase.STARTING:
            self._owner = self.backend.open(self)
            self.phase = Phase.SERVING

    def begin_stop(self) -> None:
        """The broker is stopping: refuse new work (waiting receives end with the drain)."""
        self.phase = Phase.STOPPING

    async def close(self) -> None:
        """Answer what is in flight (within ``SHUTDOWN_S``), stop listening, close the owner."""
        self.phase = Phase.STOPPING
        runners, self._runners = self._runners, []
        await asyncio.gather(*(runner.cleanup() for runner in runners))
        if self._owner is not None:
            owner, self._owner = self._owner, None
            self.backend.close(owner)

    # -------------------------------------------------------------- execution

    @property
    def owner(self) -> object:
        return self._owner

    def deliver(self, request: AnyRequest, reply: Reply) -> None:
        """The API's own owner never waits (a long poll has an owner of its own)."""
        log.warning("unexpected delivery to the HTTP API's owner: %r", request)

    def release(self, reply: Reply) -> None:
        """Give back what a receive leased for a client that went away (attempts not counted)."""
        if not isinstance(reply, ReceiveReply) or not reply.messages:
            return
        release = ReleaseReceipts(receipts=[m.receipt for m in reply.messages])
        try:
            result = self.backend.execute(self._owner, [release])
        except WonderQError as exc:  # stopping, or the store failed: the leases expire instead
            log.warning("could not release %d message(s): %s", len(reply.messages), exc.message)
            return
        log.info(
            "released %d message(s) received for an HTTP client that went away",
            len(reply.messages),
            extra={"event": "released_on_disconnect", "count": len(reply.messages)},
        )
        if not isinstance(result, list):
            pending = asyncio.ensure_future(result)
            self._releasing.add(pending)
            pending.add_done_callback(self._released)

    def _released(self, done: asyncio.Future[Replies]) -> None:
        self._releasing.discard(done)
        if not done.cancelled() and done.exception() is not None:
            log.warning("could not release messages: %s", done.exception())

    async def run(self, requests: Sequence[AnyRequest], owner: object = None) -> Replies:
        """The backend's replies to ``requests``, under ``owner`` (default: the API's)."""
        result = self.backend.execute(self._owner if owner is None else owner, requests)
        if isinstance(result, list):
            return result
        # shielded: a client that goes away cancels its handler, never the backend's work
        return await asyncio.shield(_as_future(result))

    async def call(self, request: AnyRequest) -> Reply:
        """The reply to one request that never waits; a failure reply is raised."""
        (reply,) = await self.run([request])
        assert reply is not None, "only a receive with wait > 0 may wait"
        raise_for(reply)
        return reply

    # ------------------------------------------------------------------- app

    def _application(self, routes: Sequence[Route], console: bool) -> web.Application:
        app = web.Application(
            client_max_size=self.config.max_line, middlewares=[self._errors, self._gate]
        )
        read_only = self.config.console_read_only
        app[OPENAPI] = document(
            routes, token=self.auth.required, tls=self.ssl is not None, read_only=read_only
        )
        public: set[AbstractResource] = set()
        for route in routes:
            added = app.router.add_route(route.method, route.path, _bind(self, route))
            if route.public and added.resource is not None:
                public.add(added.resource)
        if console:
            from broker.console import Site

            public.update(Site(read_only=read_only).add_routes(app))
        app[PUBLIC] = frozenset(public)
        return app

    @web.middleware
    async def _errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except WonderQError as exc:
            return error_response(exc)
        except web.HTTPException as exc:  # aiohttp's: no route, wrong method, body too large
            return from_aiohttp(exc, self.config.max_line)

    def _check_token(self, request: web.Request) -> web.Response | None:
        """Raise ``Unauthorized`` without the token; the refusal of a source that made
        too many wrong guesses (its token is then not even compared), or None."""
        throttle = self.throttle
        authorization = request.headers.get("Authorization")
        if throttle is None or not self.auth.required:
            self.auth.check(authorization)
            return None
        source = source_of(request.remote or "")
        now = asyncio.get_running_loop().time()
        wait_s = throttle.wait_s(source, now)
        if wait_s > 0:
            why = (
                "too many failed token attempts from this address; "
                f"try again in {math.ceil(wait_s)} s"
            )
            return error_response(Unauthorized(why), {"Retry-After": str(math.ceil(wait_s))})
        self.auth.check(authorization, wrong=lambda: throttle.failed(source, now))
        return None

    @web.middleware
    async def _gate(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.match_info.route.resource in request.app[PUBLIC]:
            return await handler(request)
        throttled = self._check_token(request)
        if throttled is not None:
            return throttled
        problem = self.hosts.problem(request.headers, request.host)
        if problem is not None:
            return forbidden(Unauthorized(problem))
        problem = cross_site_problem(request.method, request.headers, request.host)
        if problem is not None:
            raise Unauthorized(problem)
        if self.config.console_read_only:
            problem = read_only_problem(request.method, request.headers)
            if problem is not None:
                return forbidden(Unauthorized(problem))
        length = request.content_length
        if length is not None and length > self.config.max_line:
            raise TooLarge(
                f"the request body is {length} bytes; the limit (max-line) is "
                f"{self.config.max_line}"
            )
        self.requests_served += 1
        return await handler(request)

    def health(self) -> WonderQError | None:
        """Why ``/healthz`` is not 200, or None while serving."""
        if self.phase is Phase.STARTING:
            return Unavailable(_STARTING)
        if self.phase is Phase.STOPPING:
            return ShuttingDown(_STOPPING)
        return None


OPENAPI: Final = web.AppKey("openapi", bytes)
#: the resources that need no token: /healthz and the console's pages and files
PUBLIC: Final = web.AppKey("public", frozenset[AbstractResource])


def _bind(api: HttpApi, route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        if route.backend:
            problem = api.health()
            if problem is not None:
                raise problem
        return await route.handler(api, route, request)

    return handle


def _as_future(result: Awaitable[Replies]) -> asyncio.Future[Replies]:
    return asyncio.ensure_future(result)


async def read_body(request: web.Request) -> bytes:
    """The body; aiohttp refuses it (413) as soon as the bytes read pass ``client_max_size``."""
    return await request.read() if request.body_exists else b""
