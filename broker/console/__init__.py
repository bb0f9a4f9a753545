"""The web console: pages served by the HTTP API's server, made of static files.

The console is a client of the HTTP API only: its pages are static HTML, CSS
and JavaScript (``static/``, package data, no build step, nothing from a CDN)
that call ``/v1/...`` from the browser, so whatever it shows or does, a script
can do with the API. See ``site.py``.
"""

from broker.console.site import PAGE_PATHS, Site

__all__ = ["PAGE_PATHS", "Site"]
