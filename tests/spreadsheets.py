"""Manifests as spreadsheets save them, byte for byte, for the unit and end-to-end tests.

Excel writes every row, the last included, with CRLF; it quotes a cell only when it holds the
delimiter, a quote (doubled) or a line break, and a line break inside a cell is a bare LF. A
sheet whose used range is wider than its data gets a delimiter at the end of every row, and an
empty row inside the range is a row of bare delimiters.
"""

from __future__ import annotations

import codecs

# "CSV (Comma delimited)" from a French or German Windows: cp1252, `;`, a trailing delimiter
# (column E was once used), an empty row. 0xe9 is é, 0x80 is €, 0xef is ï, 0xfb is û.
CP1252_SEMICOLON = (
    b"path;purpose;title;price;\r\n"
    b"Caf\xe9 del Mar.wav;song;Caf\xe9 del Mar;\x80 1,99;\r\n"
    b'"Night; Day.wav";voice;"Say ""hi""";;\r\n'
    b";;;;\r\n"
    b"na\xefve/Go\xfbt.wav;instrumental;Na\xefve;\x80 0,50;\r\n"
)

# "Unicode Text": UTF-16 LE with its byte-order mark, tab-delimited; a cell with a line break.
UTF16_TABS = codecs.BOM_UTF16_LE + (
    "source\tpurpose\texternal_id\tnotes\r\n"
    'Café del Mar.wav\tsong\tA1\t"two\nlines"\r\n'
    "Niño.wav\tvoice\tA2\t€ 5\r\n"
    "Ünïcödé.wav\tinstrumental\tA3\t\r\n"
).encode("utf-16-le")

# "CSV UTF-8 (Comma delimited)" from a European locale: a UTF-8 byte-order mark and `;`.
UTF8_BOM_SEMICOLON = (
    codecs.BOM_UTF8
    + (
        "Source;Purpose;Album\r\n"
        "Café del Mar.wav;song;Été\r\n"
        'Niño.wav;voice;"Blue; Live"\r\n'
        "https://h/mix?take=1,2;instrumental;\r\n"
    ).encode()
)
