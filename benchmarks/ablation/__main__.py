"""``python -m benchmarks.ablation --out OUT``: see :mod:`benchmarks.ablation.cli`."""

from benchmarks.ablation.cli import main

raise SystemExit(main())
