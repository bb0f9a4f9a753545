"""Serving the console: its page URLs, its static files, and the headers that keep it safe.

Owns: the console's routes on an aiohttp application. Every page URL
(``PAGE_PATHS``: the overview at ``/``, a queue at ``/queues/{queue}``, the dead
letters, the connections) answers the one HTML page, and the script picks the
view from the URL, so each page has its own URL and a link to it can be shared;
``/console/{file}`` answers the static files, read once from the package. The
page says whether the console is read-only (``data-read-only`` on ``<html>``),
so it shows no action then; the server refuses a browser's actions itself in
that mode (``broker.http.auth.read_only_problem``). Every response carries the
headers that keep other sites out: no framing (a framed console's requests
would be same-origin, so a page could trick a click on ``Purge``), scripts,
styles and requests from this origin only, no sniffing, no referrer.
These routes need no token: they hold no data. The script asks for the token
and sends it with each API call.
Must never: read broker state or call the backend (the pages do, through the
API), or serve a file that is not in ``static/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractResource

from broker.errors import NotFound

STATIC_DIR: Final = Path(__file__).parent / "static"
PAGE: Final = "index.html"
#: every URL that shows a page of the console (aiohttp's patterns)
PAGE_PATHS: Final = (
    "/",
    "/queues/{queue}",
    "/dead-letters",
    "/dead-letters/{queue}",
    "/connections",
)
ASSETS: Final = "/console/"
_READ_WRITE: Final = b'data-read-only="false"'
_READ_ONLY: Final = b'data-read-only="true"'
_TYPES: Final[Mapping[str, str]] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}
HEADERS: Final[Mapping[str, str]] = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str


def load(directory: Path) -> dict[str, Asset]:
    """Every file of ``directory`` (not its subfolders) by name, with its content type."""
    out: dict[str, Asset] = {}
    for path in sorted(directory.iterdir()):
        content_type = _TYPES.get(path.suffix)
        if path.is_file() and content_type is not None:
            out[path.name] = Asset(path.read_bytes(), content_type)
    return out


class Site:
    """The console's pages and files for one server (read-only or not)."""

    def __init__(self, *, read_only: bool, directory: Path = STATIC_DIR) -> None:
        self.assets = load(directory)
        page = self.assets[PAGE].body
        if page.count(_READ_WRITE) != 1:
            raise ValueError(f"{PAGE} must say {_READ_WRITE.decode()} once, on <html>")
        self.page = page.replace(_READ_WRITE, _READ_ONLY) if read_only else page

    def add_routes(self, app: web.Application) -> list[AbstractResource]:
        """Add the console's routes to ``app``; their resources (they need no token)."""
        resources = [app.router.add_get(path, self._page).resource for path in PAGE_PATHS]
        resources.append(app.router.add_get(ASSETS + "{file}", self._asset).resource)
        return [r for r in resources if r is not None]

    async def _page(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=self.page, headers={**HEADERS, "Content-Type": _TYPES[".html"]})

    async def _asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["file"]
        asset = self.assets.get(name)
        if asset is None or name == PAGE:
            raise NotFound(f"the console has no file {name!r}")
        return web.Response(
            body=asset.body, headers={**HEADERS, "Content-Type": asset.content_type}
        )
