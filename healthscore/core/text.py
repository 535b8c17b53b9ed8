"""Text from outside (files, warehouses, vendors) made safe to show, and checked to be UTF-8.

A value read from a customer's file may be 10,000 characters long or hold control characters
(an ESC that recolours a terminal, a NUL, a newline that forges a log line). Whatever echoes
such a value — a problem message, a log line, a table cell — passes it through
:func:`printable` first: control and other invisible characters are escaped as ``\\xNN``,
``\\n`` …, and a long value is cut to its first ``limit`` characters plus its length. Backslashes
are left alone, so escaping twice changes nothing and Windows paths stay readable.

:func:`utf8_problem` says why bytes are not UTF-8 text (a UTF-16 export, Latin-1 bytes) in
words a person can act on — never echoing the bytes themselves.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(value: object, limit: int | None = 60) -> str:
    """``value`` as text safe to print: escaped, and cut after ``limit`` characters.

    ``printable("x" * 10_000)`` is the first 60 x's and ``…(10,000 chars)``; ``None`` as
    ``limit`` keeps the whole value (only escaping it).
    """
    text = value if isinstance(value, str) else str(value)
    size = len(text)
    cut = limit is not None and size > limit
    if cut:
        text = text[:limit]
    if not text.isprintable():
        text = "".join(c if c.isprintable() else _escape(c) for c in text)
    return f"{text}…({size:,} chars)" if cut else text


_BOMS = (  # longest first: the UTF-32 LE mark starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
SAVE_AS = "save it as UTF-8"


def _wide_encoding(head: bytes) -> str | None:
    """A UTF-16/32 file, told by its byte order mark or by NUL bytes in every other place."""
    for bom, name in _BOMS:
        if head.startswith(bom):
            return f"looks like {name} (BOM {bom.hex(' ').upper()})"
    sample = head[:4096]
    if b"\x00" not in sample or len(sample) < 4:
        return None
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    half = len(sample) // 2
    if odd > half * 0.3 and even * 4 < odd:
        return "looks like UTF-16 little-endian (no BOM; every other byte is 00)"
    if even > half * 0.3 and odd * 4 < even:
        return "looks like UTF-16 big-endian (no BOM; every other byte is 00)"
    return None


def utf8_problem(chunks: Iterable[bytes], *, whole: bool = True) -> str | None:
    """Why these bytes are not UTF-8 text, ending in what to do; None when they are.

    ``chunks`` are a file's bytes in order: its first block only (``whole=False``: a
    character cut at the end is no fault) or all of them, to find the line of a bad byte.
    A UTF-8 byte order mark is fine.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    first = True
    for chunk in chunks:
        if first:
            first = False
            wide = _wide_encoding(chunk)
            if wide:
                return f"not UTF-8: {wide}; {SAVE_AS}"
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            # exc.object is the undecoded tail of the last chunk plus this one; that tail is
            # part of one character, so it holds no newline
            where = line + exc.object[: exc.start].count(b"\n")
            byte = exc.object[exc.start]
            return (
                f"not UTF-8: line {where} has byte 0x{byte:02X} (Latin-1 or Windows-1252?); "
                f"{SAVE_AS}"
            )
        line += chunk.count(b"\n")
    if whole:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return f"not UTF-8: it ends inside a character (line {line}); {SAVE_AS}"
    return None
