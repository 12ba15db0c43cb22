"""Where corrections are kept: one table in SQLite or PostgreSQL (FEEDBACK_DB), through SQLAlchemy Core.

Every gunicorn worker opens its own engine and creates the table if it is missing, all at the same
moment when the server starts; creation is written so that any number of them can race (see
`ensure_schema`). A database that is down, full or read-only raises `StoreUnavailable`, which the
view turns into 503 on /feedback alone: predicting never touches this module.
"""
import logging
import threading
import zlib
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.schema import CreateIndex, CreateTable

log = logging.getLogger(__name__)

metadata = sa.MetaData()

corrections = sa.Table(
    "feedback", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("label", sa.SmallInteger, nullable=False),  # the right digit, as the person said
    sa.Column("predicted", sa.SmallInteger, nullable=False),  # what the model read when it was stored
    sa.Column("confidence", sa.Float, nullable=False),  # the model's probability for `predicted`
    sa.Column("client_predicted", sa.SmallInteger),  # what the client says it was shown, if it said
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("model_sha256", sa.String(64)),
    sa.Column("request_id", sa.String(128), index=True),  # the X-Request-ID of the prediction corrected
    sa.Column("source", sa.String(128)),
    sa.Column("image", sa.LargeBinary, nullable=False),  # the upload's pixels, without metadata (image_metadata.py)
    sa.Column("image_format", sa.String(16), nullable=False),  # its file name extension: png or jpg
    sa.Column("input", sa.LargeBinary, nullable=False),  # the 28x28 float32 input the model saw (INPUT_DTYPE)
)

INPUT_DTYPE = "<f4"  # how `input` is laid out: 784 little-endian float32, row by row

# Errors that mean "the database cannot take this now" (down, unreachable, disk full, read-only,
# locked too long), as opposed to a bug in our SQL, which must stay a 500 and a traceback.
_UNAVAILABLE = (exc.OperationalError, exc.InterfaceError, exc.TimeoutError, OSError)

# PostgreSQL: `CREATE TABLE IF NOT EXISTS` run by several sessions at once can still fail on the
# catalog's unique index of type names; workers take this transaction-scoped advisory lock first.
_SCHEMA_LOCK = zlib.crc32(b"flaskService.feedback schema")
# ... and every `add` takes this one, so that workers adding at once cannot each find room for one
# more and together overrun the caps (SQLite serialises writers already: `add` writes first).
_ADD_LOCK = zlib.crc32(b"flaskService.feedback add")


class StoreUnavailable(Exception):
    """The database cannot be reached or written; the message says why (for the log, not the client)."""


class StoreFull(Exception):
    """FEEDBACK_MAX_ROWS corrections are stored already, or this one would take the store past FEEDBACK_MAX_BYTES."""


class TooLarge(Exception):
    """One correction takes more bytes than FEEDBACK_MAX_BYTES: it could never be stored."""


def engine_for(url):
    """A SQLAlchemy engine for a FEEDBACK_DB URL: `postgresql://` means psycopg 3 (not SQLAlchemy's
    default psycopg2), `sqlite:///path` the standard library's driver."""
    url = sa.make_url(url)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # pre_ping: a database restarted behind the pool costs one reconnect, not an error per stale
    # connection; connect_timeout: an unreachable host answers 503 within seconds, not a worker timeout.
    return sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=4,
                            connect_args={"connect_timeout": 5})


def _sqlite_pragmas(connection, _record):
    # WAL: an export reading the table does not block workers writing to it.
    connection.execute("PRAGMA journal_mode=WAL")


class FeedbackStore:
    """The corrections table of one database; safe to share between a worker's threads."""

    def __init__(self, url, max_rows, retention_days, max_bytes):
        self.url = url
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.retention = timedelta(days=retention_days)
        self._engine = None
        self._schema_ready = False
        self._lock = threading.Lock()

    def ensure_schema(self):
        """Create the table and its indexes unless they exist; safe from many processes at once."""
        if self._schema_ready:
            return
        with self._lock, self._connection() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
            connection.execute(CreateTable(corrections, if_not_exists=True))
            for index in corrections.indexes:
                connection.execute(CreateIndex(index, if_not_exists=True))
            self._schema_ready = True

    def add(self, **row):
        """Store one correction; its id. Expired rows go first, so the caps count only live ones;
        at either cap the correction is refused (StoreFull), never an older one dropped for it."""
        size = row_bytes(row["image"], row["input"])
        if size > self.max_bytes:
            raise TooLarge(f"a correction of {size} bytes; FEEDBACK_MAX_BYTES is {self.max_bytes}")
        self.ensure_schema()
        with self._connection() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADD_LOCK})
            now = self._purge(connection)
            count, stored = connection.execute(sa.select(sa.func.count(), _STORED_BYTES)).one()
            if count >= self.max_rows:
                raise StoreFull(f"{count} corrections stored; FEEDBACK_MAX_ROWS is {self.max_rows}")
            if stored + size > self.max_bytes:
                raise StoreFull(f"{stored} bytes stored, {size} more would pass FEEDBACK_MAX_BYTES ({self.max_bytes})")
            inserted = connection.execute(corrections.insert().values(created_at=now, **row))
            return inserted.inserted_primary_key[0]

    def count(self):
        """How many corrections are stored, once the expired ones are deleted."""
        self.ensure_schema()
        with self._connection() as connection:
            self._purge(connection)
            return connection.execute(sa.select(sa.func.count()).select_from(corrections)).scalar_one()

    def delete(self, correction_id):
        """Delete one correction; whether it existed (an expired one does not: it is gone already)."""
        self.ensure_schema()
        with self._connection() as connection:
            self._purge(connection)
            deleted = connection.execute(corrections.delete().where(corrections.c.id == correction_id))
            return deleted.rowcount > 0

    def rows(self, *columns):
        """Every live correction (these columns), oldest first, read in chunks rather than all at once.
        Filtered rather than purged: a long export reads in one transaction, and nothing that
        expired before it began comes out of it."""
        self.ensure_schema()
        query = sa.select(*(corrections.c[name] for name in columns)).where(self._live()).order_by(corrections.c.id)
        with self._connection() as connection:
            yield from connection.execution_options(yield_per=200).execute(query)

    def close(self):
        """Close the store's connections (a script that is done with it)."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def _live(self):
        return corrections.c.created_at >= datetime.now(timezone.utc) - self.retention

    def _purge(self, connection):
        """Delete what is past FEEDBACK_RETENTION_DAYS; the time it did so."""
        now = datetime.now(timezone.utc)
        connection.execute(corrections.delete().where(corrections.c.created_at < now - self.retention))
        return now

    @contextmanager
    def _connection(self):
        """A connection in a transaction (committed when the block ends); database trouble, in
        connecting or in any statement, leaves as StoreUnavailable."""
        try:
            with self._engine_once().begin() as connection:
                yield connection
        except _UNAVAILABLE as e:
            raise StoreUnavailable(describe(self.url, e)) from e

    def _engine_once(self):
        if self._engine is None:
            self._engine = engine_for(self.url)
        return self._engine


def row_bytes(image, model_input):
    """The bytes one correction counts for against FEEDBACK_MAX_BYTES: its image and its input (the
    other columns are a few dozen bytes; the database's own overhead is not counted)."""
    return len(image) + len(model_input)


# The same sum in SQL: `length` is the byte length of a BLOB in SQLite and of a bytea in PostgreSQL.
_STORED_BYTES = sa.func.coalesce(sa.func.sum(sa.func.length(corrections.c.image) + sa.func.length(corrections.c.input)), 0)


def describe(url, error):
    """One line for a log or a message: the database (without its password) and what went wrong."""
    first_line = (str(getattr(error, "orig", None) or error).strip().splitlines() or [type(error).__name__])[0]
    return f"{sa.make_url(url).render_as_string(hide_password=True)}: {first_line}"
