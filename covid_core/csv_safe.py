"""CSV cells that a spreadsheet shows as text, never runs as a formula (CSV injection, OWASP).

A file named ``=HYPERLINK(...).png`` or ``+cmd|...`` would otherwise become a live formula when a results
CSV is opened in Excel or LibreOffice. Text cells that begin with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return get a leading apostrophe, which spreadsheets hide and treat as "this is text".
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value):
    """``value`` unchanged unless it is text that a spreadsheet would read as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
