"""The Redis Functions library: its source, its version, and loading it.

Owns: assembling the Lua sources of ``lua/`` into one library and loading it on
every master with ``FUNCTION LOAD REPLACE`` (a Function survives a failover on
the promoted replica, where an EVALSHA script cache may answer ``NOSCRIPT``).
The library's name and its functions' names carry ``VERSION``, so nodes of two
versions can share one Redis during a rolling upgrade (not across version 4:
its key expiry of idle queues is unknown to version 3, docs/scale-out.md); bump
it with every change of the keys or of the ops' arguments. A call that stores bodies (one
with a PUT) goes to ``_call``, which a Redis at its ``maxmemory`` refuses (the
PUT gets ``memory_limit``); every other call, and the node registry's
(heartbeats), goes to functions flagged ``allow-oom``, so a full Redis can
still be drained and its nodes stay members. The *test build* reads the clock
a test passes in each call instead of Redis ``TIME`` (tests never sleep for
leases or delays); a node uses it only when it is given a test clock.
Must never: be loaded with the test build on a Redis that serves production.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Final

VERSION: Final = 4
_PARTS: Final = (
    "core.lua",
    "store.lua",
    "ready.lua",
    "flush.lua",
    "lifecycle.lua",
    "messages.lua",
    "queues.lua",
    "owners.lua",
    "forget.lua",
    "main.lua",
)


def prefix(test_clock: bool) -> str:
    """The library's name, and the start of its functions' names."""
    return f"wonderq_{VERSION}_test" if test_clock else f"wonderq_{VERSION}"


@cache
def source(test_clock: bool) -> str:
    """The library's Lua source, ready for ``FUNCTION LOAD``."""
    name = prefix(test_clock)
    lua = files("broker.backend.redis").joinpath("lua")
    body = "\n".join(lua.joinpath(part).read_text(encoding="utf-8") for part in _PARTS)
    return (
        f"#!lua name={name}\n"
        f"local TEST_CLOCK = {'true' if test_clock else 'false'}\n"
        f"{body}\n"
        f"redis.register_function('{name}_call', run)\n"
        f"redis.register_function{{function_name='{name}_call_oom', callback=run, "
        "flags={'allow-oom'}}\n"
        f"redis.register_function{{function_name='{name}_node', callback=node, "
        "flags={'allow-oom'}}\n"
    )
