"""Values written to CSV or spreadsheet exports: a cell that starts like a formula is made text.

Spreadsheet programs run a cell beginning with = + - @ (or a tab or carriage return before one) as a
formula, so a customer named ``=HYPERLINK(...)`` could act on whoever opens an export. Every export
writes its cells through ``safe_cell``.
"""

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text
