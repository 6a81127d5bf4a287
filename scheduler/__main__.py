"""`python -m scheduler` is the same program as `cronlease`."""

from scheduler.cli import main

raise SystemExit(main())
