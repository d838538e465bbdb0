"""Cells a spreadsheet shows as text, whatever people typed into them.

A connection name, an environment or an audit detail that starts with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return would otherwise be read by Excel or LibreOffice as a
formula (``=HYPERLINK(...)`` becomes a live link). Every CSV and XLSX that Switchboard
writes goes through here: in CSV such a cell gets a leading apostrophe; in XLSX every text
cell is written as a string (never a formula), marked with Excel's own quote prefix when it
looks like one.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas and openpyxl are loaded when a file is made, not when the server starts
    import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def looks_like_formula(text: str) -> bool:
    return text.startswith(FORMULA_START)


def csv_cell(value: object) -> object:
    """A value for a CSV cell: text that could start a formula gets a leading apostrophe."""
    return "'" + value if isinstance(value, str) and looks_like_formula(value) else value


def csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell made safe for CSV."""
    safe = frame.copy()
    for column in safe.select_dtypes(include=["object", "string"]).columns:
        safe[column] = safe[column].map(csv_cell)
    return safe


_MAX_WIDTH = 60  # characters; longer text wraps in the cell's own view
_DATE_FORMAT = "yyyy-mm-dd hh:mm:ss"


def xlsx(header: Sequence[str], rows: Iterable[Sequence[object]], sheet: str) -> bytes:
    """One sheet: a frozen header row with filters, then ``rows``; text is always a string
    cell; datetimes (naive, UTC) are real dates; each column as wide as its content."""
    import datetime as dt
    import math

    import pandas as pd
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)
    worksheet = book.create_sheet(sheet)

    def cell(value: object) -> object:
        if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
            return None
        if isinstance(value, dt.datetime):
            when = WriteOnlyCell(worksheet, value=value.replace(microsecond=0))
            when.number_format = _DATE_FORMAT
            return when
        if not isinstance(value, str):
            return value
        text = WriteOnlyCell(worksheet, value=value)
        text.data_type = "s"  # openpyxl would read "=..." as a formula
        if looks_like_formula(value):
            text.quotePrefix = True
        return text

    body = [list(row) for row in rows]
    widths = [len(name) for name in header]
    for row in body:
        for i, value in enumerate(row):
            shown = len(_DATE_FORMAT) if isinstance(value, dt.datetime) else len(str(value)) if value is not None else 0
            widths[i] = max(widths[i], shown)
    for i, width in enumerate(widths, start=1):
        worksheet.column_dimensions[get_column_letter(i)].width = min(width, _MAX_WIDTH) + 2
    worksheet.freeze_panes = "A2"
    worksheet.auto_filter.ref = f"A1:{get_column_letter(max(len(header), 1))}{len(body) + 1}"
    worksheet.append(list(header))
    for row in body:
        worksheet.append([cell(value) for value in row])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
