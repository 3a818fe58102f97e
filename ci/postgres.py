"""A throw-away local PostgreSQL server (initdb + pg_ctl into a directory) for the metrics recorder's tests.

    eval "$(python ci/postgres.py start /tmp/pg)"   # prints: export XF_TEST_POSTGRES_URL=postgresql://...
    python ci/postgres.py stop /tmp/pg

The binaries come from ``$PG_BIN``, else ``PATH``, else the newest ``/usr/lib/postgresql/*/bin``; when none
is found and ``apt-get`` can run (as root or through password-less sudo), the Debian ``postgresql`` package
is installed. PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user (created
when missing). Authentication is ``trust`` on 127.0.0.1 only, with fsync off: this is for tests, never for
data that matters.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

USER = "xf"
SERVER_USER = "postgres"


class PostgresError(RuntimeError):
    """The local PostgreSQL server could not be found, installed, started or stopped."""


def find_bin(name: str, *, install: bool = True) -> Path:
    """The PostgreSQL server binary ``name`` (``initdb``, ``pg_ctl``); installs the Debian package once."""
    candidates = []
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]) / name)
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    candidates += [p / name for p in reversed(versions)]
    on_path = shutil.which(name)
    if on_path:
        candidates.insert(1 if os.environ.get("PG_BIN") else 0, Path(on_path))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    # As root, or through password-less sudo (CI images such as CircleCI's cimg/python).
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n", "env", "DEBIAN_FRONTEND=noninteractive"]
    can_sudo = not sudo or (shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"]).returncode == 0)
    if install and shutil.which("apt-get") and can_sudo:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run([*sudo, "apt-get", "update", "-qq"], env=env, check=False)
        subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "postgresql"], env=env, check=True)
        return find_bin(name, install=False)
    raise PostgresError(
        f"no PostgreSQL `{name}` in $PG_BIN, PATH or /usr/lib/postgresql/*/bin: install the `postgresql` "
        f"package (apt-get install postgresql) or set PG_BIN to its bin directory"
    )


def _server_user() -> str | None:
    """The user the server runs as: None (this one) unless we are root, then ``postgres`` (created if missing)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SERVER_USER], check=True)
    return SERVER_USER


def _as_server_user(command: list[str]) -> list[str]:
    user = _server_user()
    return ["runuser", "-u", user, "--", *command] if user else command


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class LocalPostgres:
    """One server whose data, socket and log live in ``directory``."""

    directory: Path
    port: int
    temporary: bool = False  # created by start(); removed by stop()

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @classmethod
    def start(cls, directory: str | os.PathLike[str] | None = None, port: int | None = None) -> LocalPostgres:
        """Start a server in ``directory`` (default: a new one under the temp dir, which stop() removes). As
        root, the server user must be able to reach it: keep it out of root-only directories."""
        temporary = directory is None
        directory = Path(directory or tempfile.mkdtemp(prefix="xf-pg-")).resolve()
        directory.mkdir(parents=True, exist_ok=True)
        server = cls(directory, port or _free_port(), temporary)
        user = _server_user()
        if user:
            shutil.chown(directory, user)
            directory.chmod(0o700)
        if not (server.data / "PG_VERSION").exists():
            _run(
                _as_server_user(
                    [
                        str(find_bin("initdb")),
                        "-D",
                        str(server.data),
                        "-A",
                        "trust",
                        "-U",
                        USER,
                        "--no-sync",
                        "-E",
                        "UTF8",
                        "--locale",
                        "C",
                    ]
                ),
                "initdb",
            )
        options = f"-p {server.port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        _run(
            _as_server_user(
                [
                    str(find_bin("pg_ctl")),
                    "-D",
                    str(server.data),
                    "-o",
                    options,
                    "-l",
                    str(directory / "log"),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            f"pg_ctl start (log: {directory / 'log'})",
        )
        (directory / "port").write_text(str(server.port))
        return server

    @classmethod
    def at(cls, directory: str | os.PathLike[str]) -> LocalPostgres:
        directory = Path(directory).resolve()
        return cls(directory, int((directory / "port").read_text()))

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL to the postmaster), as a crash or a lost machine would."""
        pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        for victim in [pid, *map(int, children)]:  # the backends too, so no connection lingers
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)

    def running(self) -> bool:
        pid_file = self.data / "postmaster.pid"
        if not pid_file.exists():
            return False
        try:
            os.kill(int(pid_file.read_text().splitlines()[0]), 0)
        except (ProcessLookupError, ValueError, IndexError):
            return False  # a stale pid file, left by kill()
        return True

    def stop(self) -> None:
        if self.running():
            _run(
                _as_server_user([str(find_bin("pg_ctl")), "-D", str(self.data), "-m", "fast", "-w", "stop"]),
                "pg_ctl stop",
            )
        if self.temporary:
            shutil.rmtree(self.directory, ignore_errors=True)


def _run(command: list[str], what: str) -> None:
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode != 0:
        raise PostgresError(f"{what} failed ({out.returncode}): {out.stderr.strip() or out.stdout.strip()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("directory", type=Path)
    parser.add_argument(
        "--format",
        choices=["shell", "env"],
        default="shell",
        help="`export K=V` (shell) or `K=V` ($GITHUB_ENV)",
    )
    args = parser.parse_args(argv)
    try:
        if args.action == "start":
            prefix = "export " if args.format == "shell" else ""
            print(f"{prefix}XF_TEST_POSTGRES_URL={LocalPostgres.start(args.directory).url}")
        else:
            LocalPostgres.at(args.directory).stop()
    except PostgresError as error:
        print(f"ci/postgres.py: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
