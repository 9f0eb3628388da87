"""What the audit and calls pages share: time-range filters and CSV downloads that spreadsheets cannot abuse."""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta, timezone

from flask import Response, request

from ivr.ops.console.base import FormError, page_error

# A spreadsheet runs a cell as a formula when it starts with one of these, even after spaces; and a cell
# that a program splits again (on a line break or another separator) starts anew there (OWASP, CSV Injection).
# Characters a reader cannot see (zero-width spaces and joiners, direction marks, a byte-order mark, soft
# hyphen) and quotes that an import strips may stand before the trigger and hide it, so they are skipped too.
_UNSEEN = r"""\s\x00-\x1f\x7f\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff"'\u2018\u2019\u201c\u201d"""
_FORMULA = re.compile(rf"(?:^|[\r\n,;|\t])[{_UNSEEN}]*[=+\-@\t\r\uff1d\uff0b\uff0d\uff20]")


TIME_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S")


def moment(value: str | None, field: str) -> tuple[datetime | None, bool]:
    """A filter written as a day (YYYY-MM-DD) or a time of day (YYYY-MM-DD HH:MM), in UTC; and whether it
    was a whole day."""
    value = (value or "").strip()
    if not value:
        return None, False
    for fmt in TIME_FORMATS:
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=timezone.utc), False
        except ValueError:
            pass
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=timezone.utc), True
    except ValueError:
        raise FormError(f"the {field} time must be written YYYY-MM-DD or YYYY-MM-DD HH:MM (UTC), "
                        f"not {value[:20]!r}") from None


def date_range(args) -> tuple[datetime | None, datetime | None]:
    """(from, until): `from` inclusive; `to` a time (exclusive) or a day (inclusive of the whole day)."""
    start, _ = moment(args.get("from"), "from")
    end, whole_day = moment(args.get("to"), "to")
    return start, end + timedelta(days=1) if end and whole_day else end


def cell(value) -> str:
    """A CSV cell; text that a spreadsheet could run as a formula, at its start or after a separator or
    line break inside it, is marked as text with a leading apostrophe (every cell is quoted, see below)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat(timespec="seconds")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # a number is a number: -1 stays -1
    text = str(value)
    return "'" + text if _FORMULA.search(text) else text


def filtered_csv(filename: str, header: list[str], rows_for: Callable[[Mapping], Iterable[Iterable]]):
    """The CSV of `rows_for(request.args)`, which reads the filters before it returns; a bad filter is a 400
    page that says why, never a download cut short."""
    try:
        rows = rows_for(request.args)
    except FormError as exc:
        return page_error(400, "Bad filter", f"{exc}.")
    return csv_download(filename, header, rows)


def csv_download(filename: str, header: list[str], rows: Iterable[Iterable]) -> Response:
    """Stream rows as a CSV attachment, a batch at a time."""

    def generate() -> Iterator[str]:
        buf = io.StringIO()
        writer = csv.writer(buf, quoting=csv.QUOTE_ALL)  # quotes doubled: a cell cannot break out into the next
        writer.writerow(header)
        for i, row in enumerate(rows, 1):
            writer.writerow([cell(v) for v in row])
            if i % 500 == 0:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue()

    return Response(generate(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
