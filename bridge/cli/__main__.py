"""``python -m bridge.cli``: the same as the ``paybridge`` console script."""

import sys

from bridge.cli import main

sys.exit(main())
