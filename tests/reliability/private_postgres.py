"""A PostgreSQL server of the test's own (a temp folder, a free port), to stop and start at will: an
outage is tested on it, never on the shared service."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support import free_port


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        pytest.skip(f"PostgreSQL's {name} is not installed")
    return found[-1]


def _as_postgres(args: list[str]) -> list[str]:
    # initdb and the server refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@dataclass
class PrivatePostgres:
    folder: str
    port: int

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/smartspec"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            _as_postgres([_bin("pg_ctl"), "-D", f"{self.folder}/data", "-w", "-t", "60", *args]),
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        self._ctl(
            "-o",
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1",
            "-l",
            f"{self.folder}/log",
            "start",
        )

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    folder = tempfile.mkdtemp(prefix="ss-private-pg-")
    os.chmod(folder, 0o777)
    server = PrivatePostgres(folder=folder, port=free_port())
    subprocess.run(
        _as_postgres(
            [_bin("initdb"), "-D", f"{folder}/data", "-U", "postgres", "--auth=trust", "-E", "UTF8"]
        ),
        check=True,
        capture_output=True,
    )
    server.start()
    try:
        subprocess.run(
            [_bin("createdb"), "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres", "smartspec"],
            check=True,
            capture_output=True,
        )
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop()
        time.sleep(0.1)
        shutil.rmtree(folder, ignore_errors=True)
