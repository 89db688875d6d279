"""The GC scheduler (spec §4.9; checklist 45) and its configuration."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from contentd import FailedPrecondition, InvalidArgument, NotFound, Unknown
from contentd.metadata import GCResult, MetadataDB, Scheduler, SchedulerConfig, parse_duration
from tests.metadata.conftest import put

WAIT = 30.0  # generous bound for "eventually"; never an assertion about speed


class FakeCollector:
    def __init__(self, duration: float = 0.01, fail: bool = False) -> None:
        self.duration = duration
        self.fail = fail
        self.started: list[float] = []
        self.ran = threading.Event()

    def __call__(self) -> GCResult:
        self.started.append(time.monotonic())
        self.ran.set()
        if self.fail:
            raise RuntimeError("boom")
        return GCResult(duration=self.duration)


def _scheduler(
    collect: Callable[[], GCResult], **config: float
) -> tuple[Scheduler, list[Callable[[bool], None]]]:
    callbacks: list[Callable[[bool], None]] = []
    s = Scheduler(
        collect,
        SchedulerConfig(**config),  # type: ignore[arg-type]
        register=callbacks.append,
        unregister=callbacks.remove,
    )
    return s, callbacks


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("100ms", 0.1),
        ("0", 0.0),
        ("1.5s", 1.5),
        ("1h2m3.5s", 3723.5),
        ("300us", 0.0003),
        ("300µs", 0.0003),
        ("-2s", -2.0),
        ("1m0.5s", 60.5),
        (".5s", 0.5),
        (2, 2.0),
        (0.25, 0.25),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1", "1x", "ms", "1s2", "s1", ".s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_duration(text)


def test_config_from_mapping_and_clamping() -> None:
    cfg = SchedulerConfig.from_mapping(
        {
            "pause_threshold": 0.9,
            "schedule_delay": "5ms",
            "startup_delay": 1,
            "mutation_threshold": -3,
        }
    )
    assert cfg.schedule_delay == pytest.approx(0.005)
    assert cfg.startup_delay == 1.0
    s = Scheduler(FakeCollector(), cfg)
    assert s.pause_threshold == 0.5
    assert s.mutation_threshold == 0
    assert Scheduler(FakeCollector(), SchedulerConfig(pause_threshold=-1)).pause_threshold == 0
    assert SchedulerConfig() == SchedulerConfig.from_mapping({})
    assert (SchedulerConfig().pause_threshold, SchedulerConfig().mutation_threshold) == (0.02, 100)
    with pytest.raises(InvalidArgument):
        SchedulerConfig.from_mapping({"pause": 1})
    with pytest.raises(InvalidArgument):
        SchedulerConfig.from_mapping({"deletion_threshold": "many"})
    with pytest.raises(InvalidArgument):
        SchedulerConfig.from_mapping({"startup_delay": "soon"})


def test_due_follows_containerds_thresholds() -> None:
    s = Scheduler(FakeCollector(), SchedulerConfig(deletion_threshold=0, mutation_threshold=3))
    assert not s._due(0, 2, scheduled=False)
    assert s._due(0, 3, scheduled=False)
    assert s._due(1, 0, scheduled=False)  # any deletion, when nothing is scheduled
    assert not s._due(1, 5, scheduled=True)  # otherwise the scheduled run will see them
    s = Scheduler(FakeCollector(), SchedulerConfig(deletion_threshold=2, mutation_threshold=0))
    assert not s._due(1, 100, scheduled=False)
    assert s._due(2, 0, scheduled=True)


def test_first_collection_at_startup_delay() -> None:
    collect = FakeCollector()
    s, _ = _scheduler(collect, startup_delay=0.01)
    s.start()
    try:
        assert collect.ran.wait(WAIT)
    finally:
        s.stop()


def test_trigger_and_wait_returns_a_collection_started_after_the_call() -> None:
    collect = FakeCollector(duration=0.01)
    s, _ = _scheduler(collect, startup_delay=0, pause_threshold=0.02)
    s.start()
    try:
        called = time.monotonic()
        result = s.trigger(wait=True, timeout=WAIT)
        assert isinstance(result, GCResult)
        assert len(collect.started) == 1  # startup_delay 0: no collection at startup
        assert collect.started[0] >= called
        assert s.collections == 1
        assert s.interval == pytest.approx(0.01 / 0.02 - 0.01)
        assert s.trigger(wait=False) is None
    finally:
        s.stop()


def test_mutations_and_deletions_schedule_collections() -> None:
    collect = FakeCollector()
    s, callbacks = _scheduler(collect, startup_delay=0, mutation_threshold=3)
    s.start()
    try:
        (callback,) = callbacks
        for _ in range(3):
            callback(False)
        assert collect.ran.wait(WAIT)
        collect.ran.clear()
        callback(True)  # a deletion: collected even below the mutation threshold
        assert collect.ran.wait(WAIT)
    finally:
        s.stop()
    assert callbacks == []


def test_failed_collection_raises_to_waiters_and_the_loop_goes_on() -> None:
    collect = FakeCollector(fail=True)
    s, _ = _scheduler(collect, startup_delay=0)
    s.start()
    try:
        with pytest.raises(Unknown, match="boom"):
            s.trigger(wait=True, timeout=WAIT)
        collect.fail = False
        assert s.trigger(wait=True, timeout=WAIT) is not None
    finally:
        s.stop()


def test_start_stop_rules() -> None:
    s, _ = _scheduler(FakeCollector(), startup_delay=0)
    with pytest.raises(FailedPrecondition):
        s.trigger()
    s.start()
    with pytest.raises(FailedPrecondition):
        s.start()
    s.stop()
    s.stop()  # idempotent
    assert not s.running
    with pytest.raises(FailedPrecondition):
        s.trigger(wait=True)


def test_delete_is_collected_in_the_background(db: MetadataDB) -> None:
    s = db.gc_scheduler({"startup_delay": "0", "schedule_delay": "1ms"})
    s.start()
    cs = db.content_store("ns")
    dgst = put(cs, b"deleted soon", labels={"containerd.io/gc.root": "x"})
    cs.delete(dgst)
    deadline = time.monotonic() + WAIT
    while True:
        try:
            db.backend.info(dgst)
        except NotFound:
            break
        assert time.monotonic() < deadline, "the backend blob was never collected"
        time.sleep(0.01)


def test_sync_lease_delete_waits_for_the_scheduler(db: MetadataDB) -> None:
    s = db.gc_scheduler(SchedulerConfig(startup_delay=0))
    s.start()
    leases = db.leases("ns")
    leases.create("L")
    dgst = put(db.content_store("ns", lease="L"), b"held by the lease")
    leases.delete("L", sync=True)
    assert s.collections >= 1
    with pytest.raises(NotFound):
        db.backend.info(dgst)  # backend cleanup finished before delete returned


def test_close_stops_the_scheduler(db: MetadataDB) -> None:
    s = db.gc_scheduler()
    s.start()
    db.close()
    assert not s.running
