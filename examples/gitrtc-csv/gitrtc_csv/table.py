"""CSV bytes ⇄ rows, keeping how the file was written.

`parse` reads a file into records, each with the exact text it was read from (its
line ending included) and its values; `Style` is the file's dialect (delimiter, quote
character, line ending, BOM), used only for rows that changed.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass

_EOL = re.compile(r"\r\n|\n|\r")


@dataclass(frozen=True, slots=True)
class Style:
    """How a file writes a new or changed row."""

    delimiter: str = ","
    quotechar: str = '"'
    lineterminator: str = "\n"
    bom: bool = False


@dataclass(frozen=True, slots=True)
class Record:
    """One row as read: its values and its exact text (with its line ending, if any)."""

    values: tuple[str, ...]
    raw: str


def decode(data: bytes) -> tuple[str, bool]:
    """The file's text and whether it began with a UTF-8 BOM (`ValueError` if not UTF-8)."""
    text = data.decode("utf-8")  # UnicodeDecodeError is a ValueError
    if "\0" in text:
        raise ValueError("a NUL byte: not a CSV file")
    if text.startswith("\ufeff"):
        return text[1:], True
    return text, False


def style_of(text: str, bom: bool) -> Style:
    """The file's dialect, sniffed (comma and LF when there is nothing to go on)."""
    eol = _EOL.search(text)
    delimiter, quotechar = ",", '"'
    try:
        sniffed = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
        delimiter, quotechar = sniffed.delimiter, sniffed.quotechar or '"'
    except csv.Error:
        pass
    return Style(delimiter, quotechar, eol.group(0) if eol else "\n", bom)


def _lines(text: str) -> list[str]:
    out, start = [], 0
    for match in _EOL.finditer(text):
        out.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        out.append(text[start:])
    return out


def parse(text: str, style: Style) -> list[Record]:
    """Every record of `text` with the exact text it came from."""
    pulled: list[str] = []
    lines = _lines(text)

    def feed() -> Iterator[str]:
        for line in lines:
            pulled.append(line)
            yield line

    reader = csv.reader(feed(), delimiter=style.delimiter, quotechar=style.quotechar, strict=False)
    records = []
    for values in reader:
        records.append(Record(tuple(values), "".join(pulled)))
        pulled.clear()
    if pulled:  # text after the last record csv reported (cannot happen with strict=False)
        records.append(Record((), "".join(pulled)))
    return records


def format_row(values: tuple[str, ...], style: Style) -> str:
    """A new or changed row in the file's dialect, with its line ending."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=style.delimiter, quotechar=style.quotechar, lineterminator=style.lineterminator)
    writer.writerow(values)
    return out.getvalue()


def render(rows: list[tuple[str, ...]], original: str, style: Style, others: tuple[str, ...] = ()) -> str:
    """The file text of `rows`: a row equal to a row of `original` (taken in order), or
    else of one of `others`, is written exactly as it was there; any other in `style`."""
    spare: dict[tuple[str, ...], list[str]] = {}
    for text in reversed((original, *others)):
        for record in reversed(parse(text, style)):
            spare.setdefault(record.values, []).append(record.raw)
    parts = []
    for values in rows:
        kept = spare.get(values)
        parts.append(kept.pop() if kept else format_row(values, style))
    for i in range(len(parts) - 1):  # a row that was last (no line ending) is last no more
        if not _ends_line(parts[i]):
            parts[i] += style.lineterminator
    if parts and original and not _ends_line(original) and _ends_line(parts[-1]):
        # the file did not end with a line ending: a new last row does not either
        last = parts[-1]
        parts[-1] = last[: -len(style.lineterminator)] if last.endswith(style.lineterminator) else last
    return ("\ufeff" if style.bom else "") + "".join(parts)


def _ends_line(text: str) -> bool:
    return text.endswith(("\n", "\r"))
