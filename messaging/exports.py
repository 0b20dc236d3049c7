"""The lines of a history export (CSV with a BOM for Excel, or JSON Lines), shared by
the export streamed from a request and the one a worker writes to a file.

Rows come from `messaging.selectors.records_iter_export_rows` as tuples
(time, opercode, worker, openid, text): building a model instance per record would
double the cost of a million-row export.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from messaging.selectors import KINDS

CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# "customer" (the remark name) comes last: files read by column position keep working.
EXPORT_COLUMNS = ("time", "kind", "opercode", "agent", "openid", "text", "customer")
ExportRow = tuple[datetime, int, str, str, str]


def csv_safe(value: str) -> str:
    """Neutralise spreadsheet formulas: a cell starting with = + - @ (or a tab or
    carriage return) is prefixed with an apostrophe so Excel shows it as text."""
    if value and value.startswith(CSV_FORMULA_STARTS):
        return "'" + value
    return value


class EchoWriter:
    """A file-like object whose write() returns the line, for csv.writer streaming."""

    def write(self, value: str) -> str:
        return value


def export_dicts(rows: Iterable[ExportRow], zone: ZoneInfo, remarks: Mapping[str, str]) -> Iterator[dict]:
    """`remarks`: {openid: remark name} (the "customer" column; empty without one)."""
    kind_of = {code: kind for kind, codes in KINDS.items() for code in codes}
    for time, opercode, worker, openid, text in rows:
        yield {
            "time": time.astimezone(zone).isoformat(),
            "kind": kind_of.get(opercode, "other"),
            "opercode": opercode,
            "agent": worker,
            "openid": openid,
            "text": text,
            "customer": remarks.get(openid, ""),
        }


def csv_lines(rows: Iterable[dict]) -> Iterator[str]:
    """The header (after a BOM, so Excel reads UTF-8 and shows Chinese), then one line per row."""
    writer = csv.writer(EchoWriter())
    yield "\ufeff" + writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        yield writer.writerow([csv_safe(str(row[column])) for column in EXPORT_COLUMNS])


def jsonl_lines(rows: Iterable[dict]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(row, ensure_ascii=False) + "\n"


def export_lines(
    export_format: str, rows: Iterable[ExportRow], zone: ZoneInfo, remarks: Mapping[str, str]
) -> Iterator[str]:
    """The export's text, line by line; `export_format` is "csv" or "jsonl"."""
    dicts = export_dicts(rows, zone, remarks)
    return csv_lines(dicts) if export_format == "csv" else jsonl_lines(dicts)


def export_content_type(export_format: str) -> str:
    return "text/csv; charset=utf-8" if export_format == "csv" else "application/x-ndjson; charset=utf-8"
