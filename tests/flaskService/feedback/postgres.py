"""Stands in for the user's PostgreSQL: Debian's server binaries run a throwaway cluster in a temporary
directory on a free loopback port, for the tests only (never shipped)."""
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import sqlalchemy as sa

from tests.helpers import free_port

# Debian installs each major version's server under /usr/lib/postgresql/<major>/bin; take the newest.
BIN = Path((sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")) or ["/usr/lib/postgresql/none/bin/pg_ctl"])[-1]).parent


class LocalPostgres:
    """One PostgreSQL server: `start()`, `stop()`, `url(database)`; trust authentication on loopback."""

    def __init__(self):
        assert (BIN / "initdb").is_file(), "PostgreSQL's server is not installed: apt-get install postgresql"
        # Under /tmp itself, not pytest's root-only tmp_path: the server runs as another user.
        self.directory = Path(tempfile.mkdtemp(prefix="feedback-postgres-"))
        self.data = self.directory / "data"
        self.port = free_port()
        if os.getuid() == 0:
            # PostgreSQL refuses to run as root; Debian's package made this user for it.
            shutil.chown(self.directory, "postgres", "postgres")
        self._as_server_user(BIN / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                             "--no-sync")

    def _as_server_user(self, *command):
        command = [str(part) for part in command]
        if os.getuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{' '.join(command)}: {done.stdout}{done.stderr}"

    def start(self):
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_server_user(BIN / "pg_ctl", "-D", self.data, "-l", self.directory / "server.log", "-o", options,
                             "-w", "start")
        return self

    def stop(self):
        """Stop at once (`-m fast`: open sessions are cut, as when a database host goes away)."""
        self._as_server_user(BIN / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def url(self, database="postgres"):
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name):
        """A new empty database; its URL."""
        engine = sa.create_engine(self.url().replace("postgresql://", "postgresql+psycopg://"),
                                  isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)

    def remove(self):
        subprocess.run([str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True, user="postgres" if os.getuid() == 0 else None)
        shutil.rmtree(self.directory, ignore_errors=True)
