"""A statement compiled by SQLAlchemy once, run through the driver's own executemany with rows as tuples.

Why: the spool writer's batches on SQLite are hundreds of rows into the same two or three statements, and
SQLAlchemy's per-row work for an executemany (building each row's parameters from its dict, running each
value's bind processor through its generic machinery) was a third of the writer's CPU, itself a large part
of what a call costs beyond bare Flask (docs/performance.md). Here the SQL is SQLAlchemy's own, compiled once
for the dialect given (`run` refuses a connection of another), and each value goes through the bind processor
SQLAlchemy would have used, so what is stored is the same; only the loop is ours. PostgreSQL's batches do not need it: they go as one JSON
array per statement (ivr/spool/batch.py).
"""
from __future__ import annotations

from sqlalchemy import Connection


class DriverMany:
    """`stmt` for one dialect: `run(conn, rows)` executes it once per row dict, in one executemany. An
    INSERT's `keys`: the columns every row gives (the others get their defaults, which must be constants)."""

    def __init__(self, stmt, dialect, keys: list[str] | None = None):
        compiled = stmt.compile(dialect=dialect, column_keys=keys)
        if compiled.positiontup is None:
            raise ValueError(f"{dialect.name}'s parameters are not positional")
        defaults = {}
        for col in compiled.insert_prefetch:  # a column left out whose default SQLAlchemy would fill in
            if not col.default.is_scalar:
                raise ValueError(f"{col.key}'s default is computed per row: give it in every row")
            defaults[col.key] = col.default.arg
        self.sql = str(compiled)
        self.dialect_name = dialect.name
        self._defaults = defaults
        self._columns = [(name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
                         for name in compiled.positiontup]

    def rows(self, rows: list[dict]) -> list[tuple]:
        """The rows as the driver takes them: each value as SQLAlchemy would bind it."""
        if self._defaults:
            rows = [{**self._defaults, **row} for row in rows]
        columns = self._columns
        return [tuple([row[name] if process is None else process(row[name]) for name, process in columns])
                for row in rows]

    def run(self, conn: Connection, rows: list[dict]):
        if conn.dialect.name != self.dialect_name:
            raise ValueError(f"compiled for {self.dialect_name}, run on {conn.dialect.name}")
        return conn.exec_driver_sql(self.sql, self.rows(rows))
