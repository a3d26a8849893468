"""Entry point of ``python -m benchmarks.admin``."""

from __future__ import annotations

import sys

from benchmarks.admin.run import main

sys.exit(main())
