"""The sans-IO wire protocol: framing, typed requests, codec, telnet shorthand."""
