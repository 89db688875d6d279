"""A fetch's jobs on the daemon's shared worker threads: at most its concurrency at once,
queued in order, cancellable until they start, and the threads kept for the next fetch."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from contentd import LocalStore
from contentd.content.types import Descriptor
from contentd.images import fetch as fetch_module
from contentd.images.fetch import FetchOptions, _Jobs, fetch
from contentd.images.registry import RegistryClient
from contentd.metadata import MetadataDB
from contentd.metadata.writer import NamespacedWriter
from tests.peers.images import build_random_image, push_image
from tests.peers.registry import RegistryPeer
from tests.peers.requires import requires


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
    assert fetch_module._threads.get() is fetch_module._threads.get()


@pytest.mark.containerd
def test_a_blob_s_commit_does_not_hold_a_download_slot(
    tmp_path: Path, registry_peer: RegistryPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one download at a time, the config's commit is held until another blob's GET
    has started: it can only start if the commit left the download slot."""
    requires("skopeo")
    image = build_random_image((64 << 10, 64 << 10), seed=31)
    pushed = push_image(image, registry_peer, "contentd/commit-beside", "v1")
    other_get = threading.Event()
    waited: list[bool] = []
    real_open_blob = RegistryClient.open_blob
    real_commit = NamespacedWriter.commit

    def open_blob(self: RegistryClient, repository: str, desc: Descriptor, offset: int = 0) -> Any:
        if desc.digest != image.platforms[0].config.digest:
            other_get.set()
        return real_open_blob(self, repository, desc, offset)

    def commit(self: NamespacedWriter, *args: Any, **kwargs: Any) -> None:
        if self._ref.startswith("config-"):
            waited.append(other_get.wait(10))
        real_commit(self, *args, **kwargs)

    monkeypatch.setattr(RegistryClient, "open_blob", open_blob)
    monkeypatch.setattr(NamespacedWriter, "commit", commit)
    with MetadataDB(tmp_path / "meta.db", LocalStore(tmp_path / "content")) as db:
        root, _ = fetch(
            lambda lease: db.content_store("ns", lease),
            db.leases("ns"),
            db.images("ns"),
            f"{registry_peer.host}/{pushed.repository}:{pushed.tag}",
            FetchOptions(plain_http=True, concurrency=1),
        )
        assert root.digest == image.index.digest
        assert waited == [True]
        held = {info.digest for info in db.content_store("ns").walk()}
        assert {b.digest for b in image.iter_blobs()} <= held
