"""A fetch's jobs on the daemon's shared worker threads: at most its concurrency at once,
queued in order, cancellable until they start, and the threads kept for the next fetch."""

from __future__ import annotations

import threading
import time

from contentd.images import fetch as fetch_module
from contentd.images.fetch import _Jobs


def test_at_most_the_limit_runs_at_once_and_the_rest_run_in_order() -> None:
    jobs = _Jobs(3)
    lock = threading.Lock()
    running = [0, 0]  # now, most
    order: list[int] = []

    def job(i: int) -> int:
        with lock:
            running[0] += 1
            running[1] = max(running[1], running[0])
            order.append(i)
        time.sleep(0.01)
        with lock:
            running[0] -= 1
        return i * i

    futures = [jobs.submit(job, i) for i in range(12)]
    jobs.join()
    assert all(f.done() for f in futures)
    assert [f.result() for f in futures] == [i * i for i in range(12)]
    assert running[1] == 3
    assert order[3:] == list(range(3, 12))  # the queued ones started in the order given


def test_a_queued_job_cancelled_never_runs_and_a_failure_is_its_future_s() -> None:
    jobs = _Jobs(1)
    gate = threading.Event()
    ran: list[str] = []

    def first() -> None:
        gate.wait(10)
        raise ValueError("first failed")

    started = jobs.submit(first)
    queued = jobs.submit(ran.append, "queued")
    assert queued.cancel()
    gate.set()
    jobs.join()
    assert ran == []
    assert isinstance(started.exception(), ValueError)


def test_a_job_may_submit_another_and_join_waits_for_it() -> None:
    jobs = _Jobs(1)
    done = threading.Event()

    def parent() -> None:
        jobs.submit(done.set)  # queued behind its parent, run by the same worker

    jobs.submit(parent)
    jobs.join()
    assert done.is_set()


def test_the_worker_threads_are_kept_for_the_next_fetch() -> None:
    names: list[list[str]] = [[], []]
    alive: set[str] = set()
    for attempt in range(2):
        if attempt:
            alive = {t.name for t in threading.enumerate()}
        jobs = _Jobs(2)
        for _ in range(4):
            jobs.submit(lambda a=attempt: names[a].append(threading.current_thread().name))
        jobs.join()
    assert all(n.startswith("contentd-fetch") for n in names[0] + names[1])
    assert set(names[1]) <= alive  # the second fetch started no thread
    assert fetch_module._worker_threads() is fetch_module._worker_threads()
