"""Secrets are masked in log lines as whole tokens, and nothing else is touched."""

from __future__ import annotations

import logging

from pipeline.core.secret import Secret
from pipeline.output.logs import RedactSecrets


def masked(message: str, *secrets: str) -> str:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, message, None, None)
    RedactSecrets([Secret(s) for s in secrets]).filter(record)
    return record.getMessage()


def test_the_key_is_masked_where_it_stands_alone() -> None:
    key = "sk-live-0123456789abcdef"
    assert masked(f"Authorization: Bearer {key}", key) == "Authorization: Bearer ***"
    assert masked(f'{{"key": "{key}"}}', key) == '{"key": "***"}'
    assert masked(f"url?key={key}&x=1", key) == "url?key=***&x=1"


def test_a_one_letter_key_never_stars_letters_in_paths_or_words() -> None:
    line = "done /music/a/track.wav (song) attempt 1"
    assert masked(line, "a") == line
    assert masked("and a cat", "a") == "and *** cat"
    assert masked("banana", "a") == "banana"


def test_a_key_inside_a_longer_token_is_left_alone() -> None:
    assert masked("abc123-tail", "abc123") == "abc123-tail"
    assert masked("sandbox-demo-key", "demo") == "sandbox-demo-key"
    assert masked("/srv/sk-1/x.wav and https://h/sk-1?q", "sk-1") == (
        "/srv/sk-1/x.wav and https://h/sk-1?q"
    )


def test_several_secrets_are_masked_and_the_longest_wins() -> None:
    assert masked("pw=hunter2 key=hunter", "hunter", "hunter2") == "pw=*** key=***"
