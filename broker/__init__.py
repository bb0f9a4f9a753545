"""WonderQ: an asyncio message broker with a newline-delimited JSON protocol."""

from broker import compiled

__version__ = "0.1.0"

# before any other module of the package: WONDERQ_PURE=1 (or a build older than the
# sources) loads the sources instead of the compiled hot modules (compiled.py)
compiled.install()
