"""The affected-customer list: importing CSV files (idempotent, resumable), lookups. Numbers themselves:
tests/test_phone_numbers.py."""
from __future__ import annotations

import hashlib
import hmac
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, inspect, select, text

from ivr.ops.cli import main
from ivr.store import affected, affected_import, affected_writes
from ivr.store.affected import is_affected, number_hash
from ivr.store.affected_import import import_file
from ivr.store.db import Database
from ivr.store.models import AffectedImport, AffectedNumber, AuditEntry
from helpers import file_bytes

SECRET = "test-secret"


@pytest.fixture
def db(config):
    database = Database(config.db_url)
    yield database
    database.dispose()


def write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def us_numbers(n: int, start: int = 0) -> list[str]:
    """n distinct valid US numbers in E.164."""
    return [f"+1212555{i:04d}" for i in range(start, start + n)]


def count_numbers(db) -> int:
    with db.read() as conn:
        return conn.execute(select(func.count()).select_from(AffectedNumber)).scalar_one()


def imports(db) -> list:
    with db.read() as conn:
        return conn.execute(select(AffectedImport.__table__).order_by(AffectedImport.id)).all()


# -- hashing -----------------------------------------------------------------------------------------------
def test_number_hash_is_a_truncated_hmac_under_a_derived_key():
    key = hmac.new(SECRET.encode(), b"affected-number", hashlib.sha256).digest()
    assert affected.hash_key(SECRET) == key
    expected = hmac.new(key, b"12125550123", hashlib.sha256).digest()[:16]
    assert number_hash(SECRET, "+12125550123") == expected
    assert affected.NumberHasher(SECRET)("+12125550123") == expected
    assert number_hash("another secret", "+12125550123") != expected


# -- importing and looking up ------------------------------------------------------------------------------
def test_import_then_lookup(db, tmp_path):
    listed = ["(212) 555-0001", "+1 212-555-0002", "2125550003", "+44 20 7946 0018"]
    path = write_csv(tmp_path / "customers.csv", ["name,phone,email"] + [
        f"Customer {i},{n},c{i}@example.com" for i, n in enumerate(listed)])
    report = import_file(db, path, secret_key=SECRET, actor="ops-lead")
    assert (report.rows_read, report.rows_added, report.already_present, report.bad_rows) == (4, 4, 0, 0)
    assert report.column == "header 'phone' (column 2)"
    for number in ["+12125550001", "212-555-0002", "+1 (212) 555-0003", "+44 20 7946 0018"]:
        assert is_affected(db, SECRET, number), number
    for number in ["+12125550004", "+442079460019", "not a number", ""]:
        assert not is_affected(db, SECRET, number), number
    assert not is_affected(db, "another secret", "+12125550001")
    assert [tuple(r)[1:] for r in _audits(db)] == [("ops-lead", "affected.import")]
    (row,) = imports(db)
    assert (row.status, row.rows_read, row.rows_added, row.bad_rows) == ("done", 4, 4, 0)


def _audits(db):
    with db.read() as conn:
        return conn.execute(select(AuditEntry.id, AuditEntry.actor, AuditEntry.action)
                            .where(AuditEntry.action == "affected.import")).all()


def test_no_plaintext_number_is_stored_anywhere(db, config, tmp_path):
    numbers = us_numbers(50, start=4200)
    path = write_csv(tmp_path / "list.csv", ["phone"] + numbers + ["bad-row-1234"])
    import_file(db, path, secret_key=SECRET, actor="ops")
    digits = [n[1:] for n in numbers] + [n[2:] for n in numbers]  # with and without the country code
    with db.read() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                for value in row:
                    blob = value if isinstance(value, bytes) else str(value).encode()
                    assert not any(d.encode() in blob for d in digits), (table, value)
    if db.is_sqlite:  # and nowhere in the files either (free pages, the WAL)
        db_file = Path(config.db_url.removeprefix("sqlite:///"))
        for f in (db_file, db_file.with_name(db_file.name + "-wal")):
            if f.exists():
                data = file_bytes(f)  # never opened by this process: its SQLite locks stay
                assert not any(d.encode() in data for d in digits[:50]), f


def test_reimporting_the_same_file_adds_nothing(db, tmp_path):
    path = write_csv(tmp_path / "list.csv", ["number"] + us_numbers(300) + us_numbers(20))  # 20 repeated
    first = import_file(db, path, secret_key=SECRET, actor="ops", batch_size=100)
    assert (first.rows_read, first.rows_added, first.already_present) == (320, 300, 20)
    again = import_file(db, path, secret_key=SECRET, actor="ops", batch_size=100)
    assert (again.rows_read, again.rows_added, again.already_present) == (320, 0, 320)
    assert again.resumed_from_line == 0
    assert count_numbers(db) == 300
    assert [r.status for r in imports(db)] == ["done", "done"]
    overlapping = write_csv(tmp_path / "more.csv", us_numbers(100, start=250))
    assert import_file(db, overlapping, secret_key=SECRET, actor="ops").rows_added == 50
    assert count_numbers(db) == 350


class Interrupted(Exception):
    pass


def test_an_interrupted_import_resumes_from_its_last_committed_batch(db, tmp_path):
    numbers = us_numbers(2500)
    rows = ["phone"] + numbers[:1200] + ["oops"] + numbers[1200:] + numbers[:5]
    path = write_csv(tmp_path / "list.csv", rows)

    def stop_after_first_batch(p):
        if p.rows_committed:
            raise Interrupted

    with pytest.raises(Interrupted):
        import_file(db, path, secret_key=SECRET, actor="ops", batch_size=1000,
                    progress=stop_after_first_batch)
    assert count_numbers(db) == 1000
    (row,) = imports(db)
    assert (row.status, row.line_no, row.rows_read, row.rows_added) == ("running", 1001, 1000, 1000)
    assert row.byte_offset == len("phone\n") + sum(len(n) + 1 for n in numbers[:1000])
    assert not _audits(db)

    seen = []
    report = import_file(db, path, secret_key=SECRET, actor="ops", batch_size=1000, progress=seen.append)
    assert report.resumed_from_line == 1001 and report.rows_this_run == 1506
    assert (report.rows_read, report.rows_added, report.bad_rows) == (2506, 2500, 1)
    assert report.already_present == 5
    assert report.bad_samples == [affected_import.BadRow(1202, "not a phone number")]
    assert count_numbers(db) == 2500
    (row,) = imports(db)  # the same import, finished
    assert (row.status, row.rows_read, row.rows_added, row.bad_rows) == ("done", 2506, 2500, 1)
    assert seen[-1].rows_done == 2506 and seen[-1].bytes_done == seen[-1].total_bytes == path.stat().st_size
    assert seen[-1].eta_s == 0 and seen[-1].rate > 0
    assert len(_audits(db)) == 1


def test_a_crash_in_the_middle_of_a_sqlite_batch_keeps_the_counts_exact(db, tmp_path, monkeypatch):
    """SQLite writes a batch in key-range transactions; the file offset moves only with the last one."""
    if not db.is_sqlite:
        pytest.skip("key-range transactions are SQLite's")
    monkeypatch.setattr(affected_writes, "SQLITE_TXN_ROWS", 300)
    write = affected_writes.SQLiteBatches.write
    batches = []

    def crash_before_the_last_range_of_batch_two(self, conn, hashes, record):
        batches.append(len(hashes))

        def record_or_crash(c, added, final):
            if final and len(batches) == 2:
                raise Interrupted
            record(c, added, final)

        return write(self, conn, hashes, record_or_crash)

    monkeypatch.setattr(affected_writes.SQLiteBatches, "write", crash_before_the_last_range_of_batch_two)
    path = write_csv(tmp_path / "list.csv", ["phone"] + us_numbers(2500))
    with pytest.raises(Interrupted):
        import_file(db, path, secret_key=SECRET, actor="ops", batch_size=1000)
    (row,) = imports(db)
    assert (row.line_no, row.rows_read) == (1001, 1000)  # batch two will be read again...
    assert count_numbers(db) == row.rows_added == 1000 + 900  # ...though three of its four ranges are in
    monkeypatch.setattr(affected_writes.SQLiteBatches, "write", write)
    report = import_file(db, path, secret_key=SECRET, actor="ops", batch_size=1000)
    assert (report.rows_read, report.rows_added, report.already_present) == (2500, 2500, 0)
    assert count_numbers(db) == 2500


def test_bad_rows_are_counted_and_reported_with_their_line_numbers(db, tmp_path):
    lines = [
        "name,phone",                      # 1
        "Ada,+1 212-555-0100",             # 2
        "Bob,",                            # 3 empty
        "Cy,call me",                      # 4
        "",                                # 5 empty line
        "Di,12",                           # 6
        '"Eve, Jr.","(212) 555-0101"',     # 7 quoted, fine
        '"Fay,"212',                       # 8 broken quoting
        "Gus",                             # 9 no second column
        "Hal," + "9" * 5000,               # 10 longer than any CSV line of numbers should be
        "Ivy,(212) 155-0123",              # 11 invalid exchange
        "Jo,212 555 0102",                 # 12
    ]
    report = import_file(db, write_csv(tmp_path / "mixed.csv", lines), secret_key=SECRET, actor="ops")
    assert (report.rows_read, report.rows_added, report.bad_rows) == (11, 3, 8)
    got = {b.line_no: b.reason for b in report.bad_samples}
    assert sorted(got) == [3, 4, 5, 6, 8, 9, 10, 11]
    assert got[3] == got[5] == "empty"
    assert got[4] == "not a phone number"
    assert "too short" in got[6]
    assert "quotes" in got[8]
    assert got[9] == "no column 2"
    assert "longer than" in got[10]
    assert "not a valid number" in got[11]
    text_lines = affected_import.report_lines(report)
    assert "  line 6: too short for US (+1)" in text_lines


def test_only_the_first_bad_rows_are_kept_but_all_are_counted(db, tmp_path):
    path = write_csv(tmp_path / "bad.csv", [f"nonsense {i}" for i in range(150)] + ["+12125550100"])
    report = import_file(db, path, secret_key=SECRET, actor="ops")
    assert report.bad_rows == 150 and len(report.bad_samples) == affected_import.MAX_BAD_ROWS_KEPT
    assert report.bad_samples[-1].line_no == 100 and report.rows_added == 1


@pytest.mark.parametrize("first_line, row, column", [
    ("phone", "+1 212-555-0100", "header 'phone' (column 1)"),
    ("Name,Phone Number,Email", "Ada,(212) 555-0100,a@example.com", "header 'phone_number' (column 2)"),
    ("id;msisdn", "7;12125550100", "header 'msisdn' (column 2)"),
    ("id\tnumber", "7\t2125550100", "header 'number' (column 2)"),
    ("id,number,phone_number", "7,12345,2125550100", "header 'phone_number' (column 3)"),
    ("\ufeffphone,name", "2125550100,Ada", "header 'phone' (column 1)"),
    ("name,email", "+12125550100,ada@example.com", "first column (the header names none of"),
    ("+12125550199", "+12125550100", "first column (no header)"),
])
def test_the_number_column_is_found_from_the_header(db, tmp_path, first_line, row, column):
    path = write_csv(tmp_path / "list.csv", [first_line, row])
    report = import_file(db, path, secret_key=SECRET, actor="ops")
    assert report.column.startswith(column)
    assert is_affected(db, SECRET, "+12125550100")
    assert report.bad_rows == 0 and report.rows_read == (2 if "no header" in column else 1)


def test_an_empty_file_and_a_missing_one(db, tmp_path):
    report = import_file(db, write_csv(tmp_path / "empty.csv", []), secret_key=SECRET, actor="ops")
    assert (report.rows_read, report.rows_added) == (0, 0)
    with pytest.raises(OSError):
        import_file(db, tmp_path / "missing.csv", secret_key=SECRET, actor="ops")


# -- the command line --------------------------------------------------------------------------------------
def _env(config) -> dict:
    return {"IVR_ENV": "production", "TWILIO_AUTH_TOKEN": config.twilio_auth_token,
            "DATABASE_URL": config.db_url, "IVR_INSTANCE_PATH": str(config.instance_path),
            "IVR_SECRET_KEY": config.secret_key}


def test_cli_import_and_check(config, tmp_path):
    path = write_csv(tmp_path / "list.csv", ["phone"] + us_numbers(10) + ["12"])
    runner = CliRunner()
    result = runner.invoke(main, ["affected", "import", str(path), "--by", "ops-lead", "--batch", "4"],
                           env=_env(config), catch_exceptions=False)
    assert result.exit_code == 1, result.output  # a row was rejected: the others are kept, and it says so
    assert "rows read:        11" in result.output and "added:            10" in result.output
    assert "line 12: too short for US (+1)" in result.output
    assert "1 of 11 rows were rejected (the other rows are on the list)" in result.output
    check = runner.invoke(main, ["affected", "check", "(212) 555-0003"], env=_env(config))
    assert check.exit_code == 0 and check.output.strip() == "***0003: on the affected list"
    check = runner.invoke(main, ["affected", "check", "+1 212 555 0999"], env=_env(config))
    assert check.output.strip() == "***0999: not on the affected list"
    assert "not a valid number" in runner.invoke(main, ["affected", "check", "12"], env=_env(config)).output
    missing = runner.invoke(main, ["affected", "import", str(tmp_path / "nope.csv")], env=_env(config))
    assert missing.exit_code == 1 and "cannot read" in missing.output


def test_cli_import_of_nothing_but_rejected_rows_exits_1(config, tmp_path):
    runner = CliRunner()
    bad = write_csv(tmp_path / "bad.csv", ["phone"] + ["12"] * 1000)
    result = runner.invoke(main, ["affected", "import", str(bad)], env=_env(config), catch_exceptions=False)
    assert result.exit_code == 1 and "added:            0" in result.output
    assert "1,000 of 1,000 rows were rejected (nothing was imported)" in result.output
    empty = write_csv(tmp_path / "empty.csv", [])
    result = runner.invoke(main, ["affected", "import", str(empty)], env=_env(config), catch_exceptions=False)
    assert result.exit_code == 1 and "holds no rows: nothing was imported" in result.output
    good = write_csv(tmp_path / "good.csv", ["phone"] + us_numbers(3))
    for _twice in (1, 2):  # all valid, then all present already: nothing to fix, exit 0
        result = runner.invoke(main, ["affected", "import", str(good)], env=_env(config), catch_exceptions=False)
        assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_an_import_killed_mid_way_resumes(config, db, tmp_path):
    """kill -9 in the middle of an import: running the command again completes it, without duplicates."""
    numbers = [f"+1{a}555{i:04d}" for a in (212, 312, 415, 617, 646, 718) for i in range(10000)]
    path = write_csv(tmp_path / "big.csv", ["phone"] + numbers)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "DATABASE_URL"))}
    env.update(_env(config))
    argv = [str(Path(sys.executable).with_name("ivr")), "affected", "import", str(path), "--batch", "2000"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(r.rows_read for r in imports(db)):
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    (row,) = imports(db)
    assert row.status == "running" and 0 < row.rows_read < len(numbers)
    assert count_numbers(db) == row.rows_read
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"resumed an interrupted import after line {row.line_no:,}" in done.stdout
    assert count_numbers(db) == len(numbers)
    (row,) = imports(db)
    assert (row.status, row.rows_read, row.rows_added) == ("done", len(numbers), len(numbers))
