"""File names: the ledger key form is lossless and unambiguous, the wire form is safe HTTP."""

from __future__ import annotations

import os

import pytest

from pipeline.core.names import is_plain, path_bytes, shown, source_key, wire_filename

NAMES = [
    b"/cat/plain.wav",
    "/cat/Caf\u00e9 del Mar.wav".encode(),  # NFC
    "/cat/Cafe\u0301 del Mar.wav".encode(),  # NFD
    b"/cat/Caf\xe9.wav",  # Latin-1 from an old SMB share
    b"/cat/line\nbreak.wav",
    b"/cat/tab\there\r.wav",
    b'/cat/quote"and\\backslash.wav',
    b"/cat/50% off; name=x.wav",
    b"/cat/\xff\xfe\x00".replace(b"\x00", b"z"),
    b"/cat/" + "\u00e9".encode() * 127 + b"x",  # 255 bytes of name
]


@pytest.mark.parametrize("raw", NAMES)
def test_source_key_round_trips_to_the_exact_bytes(raw: bytes) -> None:
    key = source_key(os.fsdecode(raw))
    assert path_bytes(key) == raw
    key.encode("utf-8")  # storable: no surrogates
    assert "\n" not in key and "\r" not in key and "\t" not in key


def test_plain_names_are_their_own_key_and_odd_ones_are_quoted() -> None:
    assert source_key("/cat/Café del Mar.wav") == "/cat/Café del Mar.wav"
    assert source_key(os.fsdecode(b"/cat/Caf\xe9.wav")) == '"/cat/Caf\\351.wav"'
    assert source_key("/cat/a\nb.wav") == '"/cat/a\\nb.wav"'
    assert source_key('/cat/"x".wav') == '/cat/"x".wav'  # plain: starts with /, not a quote


def test_wire_filename_is_what_browsers_send() -> None:
    assert wire_filename("Café del Mar.wav") == "Café del Mar.wav"
    assert wire_filename("Cafe\u0301.wav") == "Cafe\u0301.wav"  # NFD stays NFD
    assert wire_filename(os.fsdecode(b"Caf\xe9.wav")) == "Caf\ufffd.wav"
    assert wire_filename("a\nb\r\nc.wav") == "a%0Ab%0D%0Ac.wav"  # the HTML standard's escapes
    # The standard has no escape for the other controls: HTTP cannot carry them.
    assert wire_filename("a\tb\x01c\x7f.wav") == "a\ufffdb\ufffdc\ufffd.wav"
    assert wire_filename('50% "q" ; x=\\.wav') == "50% %22q%22 ; x=\\.wav"  # a backslash as is
    assert wire_filename("%22.wav") == "%22.wav"
    assert wire_filename(wire_filename(os.fsdecode(b'\xe9\n"'))) == "\ufffd%0A%22"


def test_is_plain_and_shown_never_raise_on_surrogates() -> None:
    odd = os.fsdecode(b"/x/\xe9\n")
    assert not is_plain(odd)
    assert shown(odd) == "/x/\\xe9\\n"
    shown(odd).encode("ascii")
