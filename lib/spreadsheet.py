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


def xlsx(header: Sequence[str], rows: Iterable[Sequence[object]], sheet: str) -> bytes:
    """One sheet: a header row, then ``rows``; text is always a string cell."""
    import pandas as pd
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    book = Workbook(write_only=True)
    worksheet = book.create_sheet(sheet)

    def cell(value: object) -> object:
        if value is None or value is pd.NA or (isinstance(value, float) and value != value):
            return None
        if not isinstance(value, str):
            return value
        text = WriteOnlyCell(worksheet, value=value)
        text.data_type = "s"  # openpyxl would read "=..." as a formula
        if looks_like_formula(value):
            text.quotePrefix = True
        return text

    worksheet.append(list(header))
    for row in rows:
        worksheet.append([cell(value) for value in row])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
