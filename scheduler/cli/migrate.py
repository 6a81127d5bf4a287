"""`cronlease migrate --config F`: create the tables the config's PostgreSQL queues write to.

Never done at start-up: a scheduler that creates tables in a production database when it
starts is a surprise; this is run once, by someone who means it (and re-run safely: every
statement is IF NOT EXISTS). The relay refuses to deliver into a table that is not there,
naming this command.
"""

from __future__ import annotations

import argparse
import sys

from scheduler.cli.settings import Settings
from scheduler.core.config import load_config

EXIT_OK, EXIT_UNREACHABLE, EXIT_FAILED = 0, 1, 2


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    config = load_config(settings.config_path)
    queues = [spec for spec in config.queues.values() if spec.target == "postgres"]
    if not queues:
        print(f"{settings.config_path}: no postgres queue; nothing to create")
        return EXIT_OK
    # The PostgreSQL client is the `postgres` extra's: imported only here.
    from scheduler.targets.relay.base import TargetUnavailable
    from scheduler.targets.relay.postgres import MigrationFailed, migrate
    from scheduler.targets.relay.secrets import SecretMissing

    code = EXIT_OK
    for spec in queues:
        try:
            for line in migrate(spec):
                print(line)
        except (TargetUnavailable, SecretMissing) as error:
            print(f"{settings.config_path}: queue {spec.queue!r}: {error}", file=sys.stderr)
            code = max(code, EXIT_UNREACHABLE)
        except MigrationFailed as error:
            print(f"{settings.config_path}: {error}", file=sys.stderr)
            code = EXIT_FAILED
    return code
