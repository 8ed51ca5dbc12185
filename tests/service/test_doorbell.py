"""The worker's doorbell: a job queued while the job threads look for work is never missed.

With the shared ``Event`` it replaced, the second of two quick uploads waited out a whole
poll in the queue while a job thread slept: the first thread to wake cleared the ring meant
for the second."""

from __future__ import annotations

import threading
import time

from streetwatch.service.jobs import Doorbell


def test_a_ring_after_a_ticket_is_seen_by_every_thread_holding_one() -> None:
    bell = Doorbell()
    first, second = bell.ticket(), bell.ticket()  # both threads looked and found nothing
    bell.ring()  # two jobs arrive: one ring each, or one for both
    started = time.monotonic()
    assert bell.wait(first, timeout=30)
    assert bell.wait(second, timeout=30)  # the first thread's wake took nothing from it
    assert time.monotonic() - started < 1


def test_a_ring_before_the_ticket_was_already_looked_at() -> None:
    bell = Doorbell()
    bell.ring()
    ticket = bell.ticket()  # taken after: the look that follows sees that job
    assert not bell.wait(ticket, timeout=0.05)


def test_a_sleeping_thread_wakes_on_a_ring() -> None:
    bell = Doorbell()
    ticket = bell.ticket()
    woke: list[bool] = []
    sleeper = threading.Thread(target=lambda: woke.append(bell.wait(ticket, timeout=30)))
    sleeper.start()
    time.sleep(0.05)
    started = time.monotonic()
    bell.ring()
    sleeper.join(timeout=5)
    assert woke == [True] and time.monotonic() - started < 1
