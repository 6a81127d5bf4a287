"""`python -m scheduler` is the same program as `cronlease`."""

from scheduler.cli.main import main

raise SystemExit(main())
