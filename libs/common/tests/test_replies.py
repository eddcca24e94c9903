"""Request/reply correlation: a reply completes only its own request, and only from its user."""

from __future__ import annotations

import pytest

from modyard.common.bus.replies import InvalidReply, PendingReplies


async def test_a_reply_from_the_expected_user_completes_its_request_only() -> None:
    replies = PendingReplies()
    with replies.expect("worker-a") as (first, first_future):
        with replies.expect("worker-a") as (second, second_future):
            assert first != second
            replies.settle(second, "worker-a", b'{"outputs": {"out": [1]}}')
            assert second_future.result() == {"outputs": {"out": [1]}}
            assert not first_future.done()


async def test_a_reply_from_another_user_is_dropped_and_the_request_still_waits() -> None:
    replies = PendingReplies()
    with replies.expect("worker-a") as (correlation_id, future):
        replies.settle(correlation_id, "worker-b", b'{"outputs": {}}')
        assert not future.done()
        assert replies.foreign == 1
        replies.settle(correlation_id, "worker-a", b'{"outputs": {}}')
        assert future.result() == {"outputs": {}}


async def test_late_and_repeated_replies_find_nobody_and_are_counted() -> None:
    replies = PendingReplies()
    with replies.expect(None) as (correlation_id, future):
        replies.settle(correlation_id, "anyone", b"1")
        replies.settle(correlation_id, "anyone", b"2")  # a second answer
    replies.settle(correlation_id, "anyone", b"3")  # after the caller left
    replies.settle(None, None, b"4")  # no correlation id at all
    assert future.result() == 1
    assert replies.late == 3


async def test_a_reply_that_is_not_json_fails_its_request() -> None:
    replies = PendingReplies()
    with replies.expect("worker-a") as (correlation_id, future):
        replies.settle(correlation_id, "worker-a", b"<html>")
        with pytest.raises(InvalidReply):
            future.result()
