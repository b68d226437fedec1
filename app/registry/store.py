"""Durable registry state in SQLite (WAL): schemas by id, subject versions and compatibility config.

One writer, many readers. Every write is a function of a ``StoreView`` run inside one
``BEGIN IMMEDIATE`` transaction on a dedicated writer thread, serialised by an ``asyncio.Lock``:
a crash leaves either the whole change or none of it, and concurrent registrations see each
other's ids. Reads run inline on the event loop on a separate autocommit connection, which sees
every committed write (WAL readers do not block the writer). ``synchronous=FULL`` makes a commit
durable before the HTTP response goes out.

Schema ids come from ``AUTOINCREMENT``: never reused, and a schema row is never deleted (a
permanently deleted schema that is registered again gets its old id back).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .types import SchemaId, StoredSchema, Subject, Version

__all__ = ["DB_FILENAME", "Store", "StoreView", "VersionRow"]

DB_FILENAME = "registry.sqlite3"

T = TypeVar("T")

_SCHEMA_VERSION = 1
_DDL = """
CREATE TABLE IF NOT EXISTS schemas (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    canonical   TEXT    NOT NULL UNIQUE,
    schema      TEXT    NOT NULL,
    schema_type TEXT    NOT NULL DEFAULT 'AVRO'
);
CREATE TABLE IF NOT EXISTS subject_versions (
    subject   TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    schema_id INTEGER NOT NULL REFERENCES schemas(id),
    deleted   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (subject, version)
);
CREATE INDEX IF NOT EXISTS subject_versions_by_schema ON subject_versions(schema_id);
CREATE TABLE IF NOT EXISTS global_config (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    compatibility TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS subject_config (
    subject       TEXT PRIMARY KEY,
    compatibility TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class VersionRow:
    subject: Subject
    version: Version
    schema_id: SchemaId
    deleted: bool


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30.0, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class StoreView:
    """Queries and updates over one connection (the caller owns the transaction)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    # Schemas by id.

    def schema_by_id(self, schema_id: int) -> StoredSchema | None:
        row = self._conn.execute(
            "SELECT id, schema, schema_type FROM schemas WHERE id = ?", (schema_id,)
        ).fetchone()
        return StoredSchema(SchemaId(row[0]), row[1], row[2]) if row else None

    def schema_id_by_canonical(self, canonical: str) -> SchemaId | None:
        row = self._conn.execute(
            "SELECT id FROM schemas WHERE canonical = ?", (canonical,)
        ).fetchone()
        return SchemaId(row[0]) if row else None

    def insert_schema(self, canonical: str, text: str, schema_type: str) -> SchemaId:
        cursor = self._conn.execute(
            "INSERT INTO schemas (canonical, schema, schema_type) VALUES (?, ?, ?)",
            (canonical, text, schema_type),
        )
        return SchemaId(int(cursor.lastrowid or 0))

    def usages(self, schema_id: int, include_deleted: bool) -> list[VersionRow]:
        rows = self._conn.execute(
            "SELECT subject, version, schema_id, deleted FROM subject_versions"
            " WHERE schema_id = ? AND (? OR deleted = 0) ORDER BY subject, version",
            (schema_id, include_deleted),
        ).fetchall()
        return [_version_row(row) for row in rows]

    # Subjects and versions.

    def subjects(self, include_deleted: bool) -> list[Subject]:
        rows = self._conn.execute(
            "SELECT DISTINCT subject FROM subject_versions WHERE (? OR deleted = 0)"
            " ORDER BY subject",
            (include_deleted,),
        ).fetchall()
        return [Subject(row[0]) for row in rows]

    def versions(self, subject: str, include_deleted: bool) -> list[VersionRow]:
        """The subject's versions, oldest first."""
        rows = self._conn.execute(
            "SELECT subject, version, schema_id, deleted FROM subject_versions"
            " WHERE subject = ? AND (? OR deleted = 0) ORDER BY version",
            (subject, include_deleted),
        ).fetchall()
        return [_version_row(row) for row in rows]

    def insert_version(self, subject: str, version: int, schema_id: int) -> None:
        self._conn.execute(
            "INSERT INTO subject_versions (subject, version, schema_id) VALUES (?, ?, ?)",
            (subject, version, schema_id),
        )

    def mark_deleted(self, subject: str, versions: list[int]) -> None:
        self._conn.executemany(
            "UPDATE subject_versions SET deleted = 1 WHERE subject = ? AND version = ?",
            [(subject, v) for v in versions],
        )

    def remove_versions(self, subject: str, versions: list[int]) -> None:
        self._conn.executemany(
            "DELETE FROM subject_versions WHERE subject = ? AND version = ?",
            [(subject, v) for v in versions],
        )

    # Compatibility configuration.

    def global_compatibility(self) -> str | None:
        row = self._conn.execute("SELECT compatibility FROM global_config WHERE id = 1").fetchone()
        return row[0] if row else None

    def set_global_compatibility(self, level: str | None) -> None:
        if level is None:
            self._conn.execute("DELETE FROM global_config WHERE id = 1")
        else:
            self._conn.execute(
                "INSERT INTO global_config (id, compatibility) VALUES (1, ?)"
                " ON CONFLICT(id) DO UPDATE SET compatibility = excluded.compatibility",
                (level,),
            )

    def subject_compatibility(self, subject: str) -> str | None:
        row = self._conn.execute(
            "SELECT compatibility FROM subject_config WHERE subject = ?", (subject,)
        ).fetchone()
        return row[0] if row else None

    def set_subject_compatibility(self, subject: str, level: str | None) -> None:
        if level is None:
            self._conn.execute("DELETE FROM subject_config WHERE subject = ?", (subject,))
        else:
            self._conn.execute(
                "INSERT INTO subject_config (subject, compatibility) VALUES (?, ?)"
                " ON CONFLICT(subject) DO UPDATE SET compatibility = excluded.compatibility",
                (subject, level),
            )


def _version_row(row: tuple) -> VersionRow:
    return VersionRow(Subject(row[0]), Version(row[1]), SchemaId(row[2]), bool(row[3]))


class Store:
    """The SQLite database under ``data_dir``: inline reads, serialised transactional writes."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / DB_FILENAME
        self._lock = asyncio.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._reader: sqlite3.Connection | None = None
        self._writer: sqlite3.Connection | None = None

    def open(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conn = _connect(self.path)
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in _DDL.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()
            raise
        self._writer = conn
        self._reader = _connect(self.path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="registry-writer")

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        for conn in (self._writer, self._reader):
            if conn is not None:
                conn.close()
        self._writer = self._reader = None

    @property
    def read(self) -> StoreView:
        """A view for reads on the event loop (each statement sees the latest commit)."""
        if self._reader is None:
            raise RuntimeError("store is not open")
        return StoreView(self._reader)

    async def write(self, change: Callable[[StoreView], T]) -> T:
        """Run ``change`` in one transaction on the writer thread; its exceptions roll back."""
        if self._executor is None:
            raise RuntimeError("store is not open")
        async with self._lock:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self._transaction, change)

    def _transaction(self, change: Callable[[StoreView], T]) -> T:
        conn = self._writer
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = change(StoreView(conn))
            conn.execute("COMMIT")  # inside: a failed commit must not leave it open
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back on its own (IOERR, FULL)
                conn.execute("ROLLBACK")
            raise
        return result
