"""``python -m broker``: the same as the ``wonderq`` command."""

import sys

from broker.cli import main

sys.exit(main())
