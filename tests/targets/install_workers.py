"""Install the REAL workers the target tests drive, each where its pins cannot collide.

    python tests/targets/install_workers.py            # every worker
    python tests/targets/install_workers.py celery rq  # some

Per worker, the folder tests/targets/workers/<kind>/ says how:
- requirements.txt: a virtual environment of its own, .worker-venvs/<kind> (or under
  $CRONLEASE_WORKER_VENVS), so arq's redis-py < 6 never meets kombu's >= 6.4;
- package.json (with its package-lock.json): `npm ci` in that folder (BullMQ in Node);
- apt.txt: Debian packages (`apt-get install -y`, as root: the Sidekiq from ruby-sidekiq).
.ci/run calls this before pytest, so CI skips no target test; a test whose worker is missing
skips with this command in its reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKERS = HERE / "workers"
ROOT = HERE.parent.parent


def venv_root() -> Path:
    return Path(os.environ.get("CRONLEASE_WORKER_VENVS", ROOT / ".worker-venvs"))


def install(kind: str) -> None:
    folder = WORKERS / kind
    requirements = folder / "requirements.txt"
    if requirements.exists():
        target = venv_root() / kind
        python = target / "bin" / "python"
        if not python.exists():
            venv.EnvBuilder(with_pip=True, clear=True).create(target)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements)], check=True
        )
        (target / "installed.txt").write_text(requirements.read_text())
    if (folder / "package.json").exists():
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit(f"{kind}: npm is not installed (apt-get install -y nodejs npm)")
        subprocess.run([npm, "ci", "--silent", "--no-audit", "--no-fund"], cwd=folder, check=True)
    apt = folder / "apt.txt"
    if apt.exists():
        packages = apt.read_text().split()
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
        if subprocess.run(command, env=env, stdout=subprocess.DEVNULL).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
            subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=True)


def main(argv: list[str]) -> int:
    kinds = argv or sorted(p.name for p in WORKERS.iterdir() if p.is_dir())
    for kind in kinds:
        print(f"installing the {kind} worker", flush=True)
        install(kind)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
