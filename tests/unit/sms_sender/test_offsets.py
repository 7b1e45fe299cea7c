from __future__ import annotations

from services.sms_sender.offsets import OffsetTracker


def test_commits_only_up_to_the_lowest_unfinished_offset() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11, 12, 13):
        tracker.add(0, offset)
    tracker.finish(0, 12)
    tracker.finish(0, 11)
    assert tracker.committable() == {}  # 10 is still open
    tracker.finish(0, 10)
    assert tracker.committable() == {0: 13}
    tracker.mark_committed({0: 13})
    assert tracker.committable() == {}
    tracker.finish(0, 13)
    assert tracker.committable() == {0: 14}


def test_partitions_are_independent_and_pending_is_counted() -> None:
    tracker = OffsetTracker()
    tracker.add(0, 5)
    tracker.add(1, 7)
    tracker.add(1, 8)
    tracker.finish(1, 7)
    assert tracker.committable() == {1: 8}
    assert tracker.pending() == 2
    assert tracker.pending({1}) == 1


def test_forgotten_partitions_ignore_late_finishes() -> None:
    tracker = OffsetTracker()
    tracker.add(2, 1)
    tracker.add(2, 2)
    tracker.forget({2})
    assert tracker.pending() == 0
    tracker.finish(2, 1)
    assert tracker.committable() == {}
    tracker.add(2, 1)  # assigned again later, from the committed offset
    tracker.finish(2, 1)
    assert tracker.committable() == {2: 2}


def test_finishing_twice_or_unknown_offsets_changes_nothing() -> None:
    tracker = OffsetTracker()
    tracker.add(0, 1)
    tracker.finish(0, 1)
    tracker.finish(0, 1)
    tracker.finish(0, 99)
    assert tracker.pending() == 0
    assert tracker.committable() == {0: 2}


def test_a_partition_with_a_released_request_restarts_below_every_open_one() -> None:
    tracker = OffsetTracker()
    for offset in (20, 21, 22, 23):
        tracker.add(3, offset)
    tracker.finish(3, 20)
    tracker.abandon(3, 22)  # released: its partition was revoked before the call
    # 21 is still under way: fetching again from 22 and committing past 21 would lose it
    # if it is released in turn after a later rebalance.
    assert tracker.restart_points({3}) == {3: 21}
    assert tracker.restart_points({0, 1}) == {}
    assert tracker.committable() == {3: 21}  # nothing at or after a released request
    assert tracker.pending({3}) == 2  # a drain does not wait for the released one


def test_no_restart_without_a_released_request() -> None:
    tracker = OffsetTracker()
    tracker.add(0, 1)
    tracker.add(0, 2)
    tracker.finish(0, 2)
    assert tracker.restart_points({0}) == {}
