"""A throw-away local PostgreSQL server (Debian ``postgresql``) for tests and benchmarks of the shared case store.

PostgreSQL refuses to run as root, so as root the cluster folder is given to the ``postgres`` user and ``initdb`` /
``pg_ctl`` run through ``runuser -u postgres``. The server listens on 127.0.0.1 only, on a free port, with its
socket in the cluster folder; authentication is ``trust`` for loopback (a test server holding no real data).

    with LocalPostgres(tmp_path) as pg:
        url = pg.create_database("cases")    # postgresql+psycopg://postgres@127.0.0.1:PORT/cases
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path


def pg_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding initdb, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: float(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def available() -> bool:
    """Whether a PostgreSQL server can be started here (binaries present; as root, a ``postgres`` user)."""
    if pg_bin() is None:
        return False
    if os.geteuid() == 0:
        import pwd

        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return False
        return shutil.which("runuser") is not None
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalPostgres:
    """A private PostgreSQL cluster, started by :meth:`start`, stopped (and its folder removed) by :meth:`stop`.

    folder: where the cluster lives (default: a new temporary folder). As root the cluster always goes into a new
    folder under the system temporary directory owned by ``postgres``: the server cannot enter folders private
    to root, such as pytest's ``tmp_path``.
    """

    def __init__(self, folder: str | Path | None = None):
        import tempfile

        if folder is None or os.geteuid() == 0:
            folder = tempfile.mkdtemp(prefix="medviewer-pg-")
        self.folder = Path(folder)
        self.data = self.folder / "pgdata"
        self.port = 0
        self._n = 0

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        cmd = list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> "LocalPostgres":
        """initdb and start the server; raises RuntimeError with the server's log on failure."""
        binary = pg_bin()
        if binary is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
            os.chmod(self.folder, 0o700)
        self.port = self.port or _free_port()
        if not (self.data / "PG_VERSION").exists():
            self._run(str(binary / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                      "--encoding=UTF8", "--locale=C.UTF-8")
        log = self.folder / "server.log"
        opts = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        try:
            self._run(str(binary / "pg_ctl"), "-D", str(self.data), "-l", str(log), "-o", opts, "-w", "start")
        except subprocess.CalledProcessError as exc:
            text = log.read_text(errors="replace")[-2000:] if log.exists() else exc.stderr
            raise RuntimeError(f"PostgreSQL did not start: {text}") from exc
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown)."""
        binary = pg_bin()
        if binary is not None and (self.data / "postmaster.pid").exists():
            try:
                self._run(str(binary / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
            except subprocess.CalledProcessError:
                pass
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "LocalPostgres":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of a database on this server (psycopg 3 driver)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """CREATE DATABASE (a fresh name when None); returns its URL."""
        import psycopg

        if name is None:
            self._n += 1
            name = f"t{os.getpid()}_{self._n}_{time.monotonic_ns() % 1_000_000}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


__all__ = ["LocalPostgres", "available", "pg_bin"]
