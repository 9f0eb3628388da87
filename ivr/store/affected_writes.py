"""Adding a batch of hashes to the affected list as fast as each database allows (SQLite: key ranges; PostgreSQL: COPY)."""
from __future__ import annotations

import time

from sqlalchemy import Connection

from ivr.store.affected import HASH_BYTES

# Keys per SQLite write transaction (a batch is sorted, then written in key ranges): each transaction stays
# well under the 5 s the hotline's writers wait before "database is locked" (one per 500k batch did not).
SQLITE_TXN_ROWS = 50_000
SQLITE_IMPORT_CACHE_KIB = 32 * 1024  # page cache of the import connection only (the default is 2 MiB)
_PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # binary COPY: signature, flags, no header extension
_PGCOPY_ROW = b"\x00\x01" + HASH_BYTES.to_bytes(4, "big")  # one field of 16 bytes
_PGCOPY_TRAILER = b"\xff\xff"


class SQLiteBatches:
    """INSERT OR IGNORE by executemany, a batch's keys sorted and written in key-range transactions.

    Random keys touch nearly every b-tree page, and SQLite writes each page a transaction touched to the WAL
    and back: so batches are large (BATCH_SQLITE rows) to touch each page once per batch, and sorted, so that
    transactions of SQLITE_TXN_ROWS consecutive keys each write only their own pages; the write lock is held
    half a second at most at 10 million rows, not for the whole batch. The file offset advances with the
    batch's last transaction: a rerun after a crash in mid-batch reads the batch again and adds nothing twice,
    and rows_added (committed with each transaction) stays exact. The import's connection gets a larger page
    cache and a WAL size limit, put back before it returns to the pool. Durability is the hotline's own (WAL,
    synchronous=NORMAL): a commit survives the process being killed; an OS crash may lose the last ones, which
    a rerun imports again.
    """

    SQL = "INSERT OR IGNORE INTO affected_numbers (number_hash) VALUES (?)"
    overlap = False  # see _Run

    def __init__(self, conn: Connection):
        self.raw = conn.connection.driver_connection
        self.longest_write_s = 0.0
        self.saved = {p: self.raw.execute(f"PRAGMA {p}").fetchone()[0]
                      for p in ("cache_size", "journal_size_limit")}
        self.raw.execute(f"PRAGMA cache_size=-{SQLITE_IMPORT_CACHE_KIB}")
        self.raw.execute("PRAGMA journal_size_limit=67108864")  # the WAL shrinks back to 64 MiB after a batch

    def write(self, conn: Connection, hashes: list[bytes], record) -> int:
        hashes.sort()
        added = 0
        for start in range(0, max(len(hashes), 1), SQLITE_TXN_ROWS):
            t0 = time.monotonic()
            with conn.begin():
                cur = self.raw.cursor()
                try:
                    cur.executemany(self.SQL, zip(hashes[start:start + SQLITE_TXN_ROWS]))
                    added += max(cur.rowcount, 0)
                finally:
                    cur.close()
                record(conn, added, start + SQLITE_TXN_ROWS >= len(hashes))
            self.longest_write_s = max(self.longest_write_s, time.monotonic() - t0)
        return added

    def close(self) -> None:
        for pragma, value in self.saved.items():
            self.raw.execute(f"PRAGMA {pragma}={int(value)}")


class PostgresBatches:
    """Binary COPY into a temporary staging table, then INSERT ... SELECT ... ON CONFLICT DO NOTHING.

    One transaction per batch: PostgreSQL locks rows, not the table, so nobody waits for it.
    """

    overlap = True  # see _Run

    def __init__(self, conn: Connection):
        self.raw = conn.connection.driver_connection
        self.longest_write_s = 0.0
        with conn.begin():
            conn.exec_driver_sql("CREATE TEMPORARY TABLE IF NOT EXISTS affected_staging (number_hash bytea) "
                                 "ON COMMIT DELETE ROWS")

    def write(self, conn: Connection, hashes: list[bytes], record) -> int:
        t0 = time.monotonic()
        with conn.begin():
            added = self._add(hashes)
            record(conn, added, True)
        self.longest_write_s = max(self.longest_write_s, time.monotonic() - t0)
        return added

    def _add(self, hashes: list[bytes]) -> int:
        if not hashes:
            return 0
        payload = b"".join((_PGCOPY_HEADER, b"".join(_PGCOPY_ROW + h for h in hashes), _PGCOPY_TRAILER))
        with self.raw.cursor() as cur:
            with cur.copy("COPY affected_staging (number_hash) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(payload)
            # In key order, the index is walked once per batch (a third less time a row than unordered).
            cur.execute("INSERT INTO affected_numbers (number_hash) SELECT number_hash FROM affected_staging "
                        "ORDER BY number_hash ON CONFLICT DO NOTHING")
            return cur.rowcount

    def close(self) -> None:
        pass


# -- reporting ---------------------------------------------------------------------------------------------
