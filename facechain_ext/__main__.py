"""`python -m facechain_ext ...` (see cli.py)."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
