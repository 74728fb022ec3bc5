"""``python -m benchmarks.reattack --out DIR``: see the package docstring."""

import sys

from .cli import main

sys.exit(main())
