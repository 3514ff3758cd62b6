"""``python -m proxy`` is the ``feedback-proxy`` command."""

import sys

from proxy.cli import main

sys.exit(main())
