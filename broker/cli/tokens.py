"""Where a command's token comes from: ``--token``, ``--token-file`` or ``WONDERQ_TOKEN``.

Owns: reading the token the same way for ``serve`` (the broker's) and for every
client command (the one it sends), and saying which source it came from, so an
error can name it. Must never: print or log a token.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

from broker.config import TOKEN_ENV


def read_token(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> tuple[str | None, str | None]:
    """The token from --token, --token-file or WONDERQ_TOKEN (in that order, an empty
    variable being none) and the flag or variable it came from; ValueError if bad."""
    env = os.environ if environ is None else environ
    if args.token is not None and args.token_file is not None:
        raise ValueError("give --token or --token-file, not both")
    if args.token is not None:
        if not args.token:
            raise ValueError("the token is empty")
        return args.token, "--token"
    if args.token_file is not None:
        try:
            with open(args.token_file, encoding="utf-8") as f:
                token = f.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read --token-file: {exc}") from None
        if not token:
            raise ValueError(f"the token file {args.token_file} is empty")
        return token, "--token-file"
    from_env = env.get(TOKEN_ENV) or None
    return from_env, None if from_env is None else TOKEN_ENV
