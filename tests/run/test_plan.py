"""The decision ladder of plan.decide: every branch, with no ledger, files or loop."""

from __future__ import annotations

import pytest

from pipeline.core.entry import Entry
from pipeline.core.records import SourceState
from pipeline.run.plan import Policy, Step, decide

NOW = 1_000_000 * 10**9


def file_entry(**changes: object) -> Entry:
    values: dict[str, object] = {
        "source": "/cat/a.wav",
        "purpose": "song",
        "filename": "a.wav",
        "path": "/cat/a.wav",
        "size": 100,
        "mtime_ns": NOW - 3600 * 10**9,
    }
    return Entry(**(values | changes))  # type: ignore[arg-type]


def state(**changes: object) -> SourceState:
    values: dict[str, object] = {
        "id": 1,
        "size": 100,
        "mtime_ns": NOW - 3600 * 10**9,
        "sha256": "a" * 64,
        "status": "ok",
        "retryable": 0,
        "error": None,
        "content_id": 7,
        "content_status": "pending",
        "content_retryable": 0,
    }
    return SourceState(**(values | changes))  # type: ignore[arg-type]


def step(entry: Entry, known: SourceState | None, **kw: object) -> Step:
    policy = Policy(**{k: v for k, v in kw.items() if k != "error"})  # type: ignore[arg-type]
    error = kw.get("error")
    return decide(entry, known, policy=policy, now_ns=NOW, error=error).step  # type: ignore[arg-type]


def test_a_new_file_is_hashed() -> None:
    assert step(file_entry(), None) is Step.HASH


def test_an_unchanged_file_done_earlier_is_skipped() -> None:
    assert step(file_entry(), state(content_status="done")) is Step.SKIP_DONE


def test_an_unchanged_pending_file_reuses_its_hash() -> None:
    assert step(file_entry(), state()) is Step.REUSE


@pytest.mark.parametrize("change", [{"size": 101}, {"mtime_ns": NOW - 10**9}])
def test_a_changed_file_is_hashed_again_even_if_done(change: dict[str, int]) -> None:
    assert step(file_entry(**change), state(content_status="done")) is Step.HASH


def test_failed_for_good_is_skipped_unless_retry_failed() -> None:
    failed = state(content_status="failed", content_retryable=0)
    assert step(file_entry(), failed) is Step.SKIP_FAILED
    assert step(file_entry(), failed, retry_failed=True) is Step.REUSE


def test_out_of_attempts_is_taken_again_by_a_plain_run() -> None:
    assert step(file_entry(), state(content_status="failed", content_retryable=1)) is Step.REUSE


def test_a_young_file_is_left_alone_with_min_age() -> None:
    young = file_entry(mtime_ns=NOW - 10 * 10**9)
    assert step(young, None, min_age_ns=60 * 10**9) is Step.SKIP_YOUNG
    assert step(young, None) is Step.HASH


def test_an_entry_error_fails_once_and_is_skipped_when_the_ledger_already_says_so() -> None:
    bad = file_entry(error="no purpose", purpose="")
    assert step(bad, None) is Step.FAIL
    known = state(status="failed", error="no purpose", content_status=None)
    assert step(bad, known) is Step.SKIP_FAILED
    assert step(bad, known, retry_failed=True) is Step.FAIL


def test_an_unreadable_file_fails_and_is_not_reported_twice() -> None:
    reason = "cannot read file: Permission denied"
    assert step(file_entry(), None, error=reason) is Step.FAIL
    known = state(status="failed", error=reason)
    assert step(file_entry(), known, error=reason) is Step.SKIP_FAILED


def test_urls_are_fetched_unless_done_or_failed_for_good() -> None:
    url = file_entry(path=None, url="https://h/a.wav", source="https://h/a.wav", size=None)
    assert step(url, None) is Step.FETCH
    assert step(url, state(content_status="done")) is Step.SKIP_DONE
    assert step(url, state(status="failed", retryable=0)) is Step.SKIP_FAILED
    assert step(url, state(status="failed", retryable=1)) is Step.FETCH


def object_entry(**changes: object) -> Entry:
    url = "s3://cat/song/a b.wav"
    values: dict[str, object] = {"source": url, "purpose": "song", "filename": "a b.wav"}
    values |= {"url": url, "size": 100, "etag": "e1"}
    return Entry(**(values | changes))  # type: ignore[arg-type]


def test_an_unchanged_object_done_earlier_is_skipped_without_a_download() -> None:
    known = state(mtime_ns=None, etag="e1", content_status="done")
    assert step(object_entry(), known) is Step.SKIP_DONE


@pytest.mark.parametrize("change", [{"etag": "e2"}, {"size": 101}])
def test_an_object_written_again_is_fetched_even_if_done(change: dict[str, object]) -> None:
    known = state(mtime_ns=None, etag="e1", content_status="done")
    assert step(object_entry(**change), known) is Step.FETCH


def test_an_object_the_ledger_has_no_etag_for_is_fetched() -> None:
    known = state(mtime_ns=None, etag=None, content_status="done")  # a row from before ETags
    assert step(object_entry(), known) is Step.FETCH
    assert step(object_entry(), None) is Step.FETCH


def test_an_unchanged_object_failed_for_good_is_skipped_unless_retry_failed() -> None:
    known = state(mtime_ns=None, etag="e1", status="failed", error="not audio", content_id=None)
    assert step(object_entry(), known) is Step.SKIP_FAILED
    assert step(object_entry(), known, retry_failed=True) is Step.FETCH
    assert step(object_entry(), state(mtime_ns=None, etag="e1")) is Step.FETCH  # pending


def test_a_manifest_row_naming_an_object_is_a_url_done_once() -> None:
    row = object_entry(size=None, etag=None)  # a manifest row knows neither
    assert step(row, state(mtime_ns=None, etag="e1", content_status="done")) is Step.SKIP_DONE
    assert step(row, None) is Step.FETCH
