"""SQLite connections as the local services use them: WAL, full sync, one per thread.

Every service keeps its durable state in its own SQLite file, as each AWS service keeps its
own; WAL lets pollers read while producers write, and ``synchronous=FULL`` means a commit that
returned survives a crash of the process or the machine. A file found damaged after it opened
raises :class:`~helpers.exceptions.StateFileError` and a full disk
:class:`~helpers.exceptions.DiskFullError`, each naming the file or the disk and the fix; a
transaction they interrupt is rolled back whole. New files get 16 KiB pages and each
connection a 64 MiB page cache: the services append rows of about a kilobyte in transactions of
thousands, where small pages and a small cache cost a third of the write time.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from helpers.exceptions import DiskFullError, StateFileError

PAGE_SIZE = 16384
_FULL, _CORRUPT, _NOTADB = 13, 11, 26  # SQLite's primary result codes
CACHE_KIB = 65536
RELEASE_PAGES = 4096
"""Free pages given back per transaction by :meth:`Database.release_free_pages` (64 MiB)."""
_INCREMENTAL = 2  # PRAGMA auto_vacuum's answer for INCREMENTAL


class Database:
    """A SQLite file shared by threads, each with its own connection.

    ``checkpoint_pages`` is the WAL size, in pages, at which a commit copies the WAL into the
    database file (SQLite's ``wal_autocheckpoint``, 1000 by default).
    """

    def __init__(
        self, path: Path, schema: str, checkpoint_pages: int = 1000, incremental: bool = False
    ):
        self.path = Path(path)
        self.checkpoint_pages = checkpoint_pages
        self.incremental = incremental
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        try:
            self.connection.executescript(schema)
        except sqlite3.DatabaseError as error:
            if isinstance(error, sqlite3.OperationalError) and "locked" in str(error):
                raise
            raise self._damaged(error) from None

    def _damaged(self, error: sqlite3.DatabaseError) -> StateFileError:
        return StateFileError(
            f"{self.path} cannot be read as the SQLite database it should be ({error}):"
            " it is damaged or was replaced. Restore it from a copy of the root, or remove"
            f" the root {self.path.parent} to start again empty (its data is then lost)"
        )

    def _translated(self, error: sqlite3.DatabaseError) -> Exception:
        """A damaged file or a full disk as the error that names it and the fix; any other
        error as it is."""
        code = (getattr(error, "sqlite_errorcode", None) or 0) & 0xFF
        if code == _FULL:
            return DiskFullError.at(self.path, f"writing {self.path.name}")
        if code in (_CORRUPT, _NOTADB):
            return self._damaged(error)
        return error

    @property
    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path, timeout=60, isolation_level=None, check_same_thread=False
            )
            connection.execute(f"PRAGMA page_size={PAGE_SIZE}")  # only takes on a new file
            if self.incremental:  # so does this: free pages can go back to the file system
                connection.execute("PRAGMA auto_vacuum=INCREMENTAL")
            connection.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute(f"PRAGMA wal_autocheckpoint={self.checkpoint_pages}")
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken at once (BEGIN IMMEDIATE), committed on success. Inside
        another one on the same thread it joins it: the outer one commits or rolls back."""
        connection = self.connection
        if connection.in_transaction:
            yield connection
            return
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
            connection.execute("COMMIT")
        except BaseException as error:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            if isinstance(error, sqlite3.DatabaseError):
                translated = self._translated(error)
                if translated is not error:
                    raise translated from None
            raise

    def read(self, sql: str, parameters: tuple | list = ()) -> list[tuple]:
        """Rows of one query on this thread's connection."""
        try:
            return self.connection.execute(sql, parameters).fetchall()
        except sqlite3.DatabaseError as error:
            translated = self._translated(error)
            if translated is error:
                raise
            raise translated from None

    def scalar(self, sql: str, parameters: tuple | list = ()):
        """The first column of the first row, or None."""
        rows = self.read(sql, parameters)
        return rows[0][0] if rows else None

    def release_free_pages(self, keep_share: float) -> int:
        """Give the free pages beyond ``keep_share`` of the file back to the file system, in
        transactions of ``RELEASE_PAGES`` (writers wait for one at a time); returns how many.

        Only a file made with ``incremental`` can (SQLite's ``auto_vacuum`` is fixed when a
        file is made); others keep their size and reuse their free pages. In WAL mode the
        file shrinks at the checkpoint that follows, which this asks for.
        """
        if self.scalar("PRAGMA auto_vacuum") != _INCREMENTAL:
            return 0
        released = 0
        while True:
            with self.write() as connection:
                free = connection.execute("PRAGMA freelist_count").fetchone()[0]
                pages = connection.execute("PRAGMA page_count").fetchone()[0]
                excess = min(free - int(pages * keep_share), RELEASE_PAGES)
                if excess <= 0:
                    break
                connection.execute(f"PRAGMA incremental_vacuum({excess})").fetchall()
            released += excess
        if released:
            self.read("PRAGMA wal_checkpoint(PASSIVE)")
        return released

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()
