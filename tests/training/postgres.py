"""A real PostgreSQL for the tuner's tests: Debian's `postgresql` package, a server in a temporary folder
started with initdb and pg_ctl, reached on a Unix socket in that folder (trust) and on loopback (a
password). PostgreSQL refuses to run as root, so under root the server runs as the `postgres` user."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass

USER, PASSWORD, DATABASE = "tuner", "sekret-Pa55word", "studies"


@dataclass(frozen=True)
class Server:
    folder: str
    port: int

    @property
    def socket_url(self) -> str:  # no password: the socket trusts its local users
        return f"postgresql+psycopg://{USER}@/{DATABASE}?host={self.folder}&port={self.port}"

    def loopback_url(self, password: str = PASSWORD) -> str:
        return f"postgresql+psycopg://{USER}:{password}@127.0.0.1:{self.port}/{DATABASE}"


def binaries() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return os.path.dirname(found[-1]) if found else shutil.which("pg_ctl") and os.path.dirname(shutil.which("pg_ctl"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_server():
    bin_folder = binaries()
    if bin_folder is None:
        raise FileNotFoundError("PostgreSQL is not installed (apt-get install postgresql)")
    folder = tempfile.mkdtemp(prefix="tune-pg-")
    as_user = []
    if os.geteuid() == 0:  # initdb and postgres refuse root
        account = pwd.getpwnam("postgres")
        os.chown(folder, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = os.path.join(folder, "data"), free_port()

    def run(*command):
        subprocess.run([*as_user, *command], check=True, capture_output=True, cwd=folder)

    try:
        run(f"{bin_folder}/initdb", "-D", data, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256")
        options = f"-k {folder} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
        run(f"{bin_folder}/pg_ctl", "-D", data, "-l", os.path.join(folder, "log"), "-o", options, "-w", "start")
        sql = (
            f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'",
            f"CREATE DATABASE {DATABASE} OWNER {USER}",
        )
        for statement in sql:
            run(f"{bin_folder}/psql", "-h", folder, "-p", str(port), "-U", "postgres", "-c", statement)
        yield Server(folder, port)
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            run(f"{bin_folder}/pg_ctl", "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)
