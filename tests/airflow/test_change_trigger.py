"""OneDriveChangeTrigger against the emulator over HTTP, driven round by round.

The shared feed (``open_shared_stream``) is stepped one poll at a time and its rounds handed to the watchers'
``filter_shared_stream``; a watcher has finished a round when it asks for the next one, so every assertion
is about a completed round, never about elapsed time. Time that matters (``stable_for``) is the emulator's
clock, moved by the test.

The triggerer's own path (Airflow's ``SharedStreamManager`` in ack mode, events confirmed stored or not, crashes
and restarts) runs through :class:`Triggerer`; there too every wait is for a condition.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from airflow_provider_onedrive.errors import OneDriveValidationError
from airflow_provider_onedrive.testing.assets import MemoryAssetStateStore
from airflow_provider_onedrive.triggers.delta import Round
from airflow_provider_onedrive.triggers.onedrive import STATE_KEY, OneDriveChangeTrigger

pytestmark = pytest.mark.airflow

TIMEOUT = 60.0  # a broken watcher fails the test instead of hanging it


class Feed:
    """The shared poll of the default connection, one round per :meth:`next`."""

    def __init__(self, interval: float = 0.01) -> None:
        kwargs = OneDriveChangeTrigger(path="x", poll_interval=interval).serialize()[1]
        self.stream = OneDriveChangeTrigger.open_shared_stream(kwargs)

    async def next(self) -> Round:
        return await asyncio.wait_for(self.stream.__anext__(), TIMEOUT)

    async def close(self) -> None:
        await self.stream.aclose()  # type: ignore[attr-defined]


class Watcher:
    """One trigger's ``filter_shared_stream``, fed rounds by hand."""

    def __init__(self, trigger: OneDriveChangeTrigger) -> None:
        self.trigger = trigger
        self.queue: asyncio.Queue[Round] = asyncio.Queue()
        self.ready = asyncio.Event()
        self.events: list[dict[str, Any]] = []
        self.task = asyncio.ensure_future(self._consume())

    async def _rounds(self) -> AsyncIterator[Round]:
        while True:
            self.ready.set()
            item = await self.queue.get()
            self.ready.clear()
            yield item

    async def _consume(self) -> None:
        async for event in self.trigger.filter_shared_stream(self._rounds()):
            self.events.append(event.payload)

    async def _wait_ready(self) -> None:
        waiter = asyncio.ensure_future(self.ready.wait())
        done, _ = await asyncio.wait({waiter, self.task}, timeout=TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self.task in done:
            self.task.result()  # re-raise the watcher's error
            raise AssertionError("the watcher ended")
        assert done, "the watcher did not finish its round"

    async def feed(self, round_: Round) -> list[dict[str, Any]]:
        """Hand one round over; the events it fired once the watcher is done with it."""
        await self._wait_ready()
        before = len(self.events)
        self.ready.clear()
        self.queue.put_nowait(round_)
        await self._wait_ready()
        return self.events[before:]

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def watcher(store: MemoryAssetStateStore | None = None, **kwargs: Any) -> Watcher:
    trigger = OneDriveChangeTrigger(**kwargs)
    trigger.asset_state_store = store
    return Watcher(trigger)


def seed_old(drive, path: str, data: bytes, age: float = 600) -> None:
    """A file the drive created ``age`` seconds ago (long before the watcher started)."""
    drive.advance_time(-age)
    try:
        drive.put_file(path, data)
    finally:
        drive.advance_time(age)


def delta_requests(drive) -> list[Any]:
    return [r for r in drive.requests if r.path.split("?")[0].endswith("/delta")]


# -- construction ------------------------------------------------------------------------------------------------
def test_serialize_is_pinned_deterministic_and_round_trips():
    trigger = OneDriveChangeTrigger(
        path="incoming/*.csv",
        onedrive_conn_id="finance_drive",
        kinds=["deleted", "created"],
        stable_for=30,
        case_sensitive=True,
        poll_interval=120,
    )
    classpath, kwargs = trigger.serialize()
    assert (classpath, kwargs) == (
        "airflow_provider_onedrive.triggers.onedrive.OneDriveChangeTrigger",
        {
            "path": "incoming/*.csv",
            "onedrive_conn_id": "finance_drive",
            "kinds": ["created", "deleted"],
            "recursive": False,
            "stable_for": 30.0,
            "case_sensitive": True,
            "poll_interval": 120.0,
        },
    )
    from airflow.sdk.module_loading import import_string
    from airflow.triggers.base import BaseEventTrigger

    again = import_string(classpath)(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    # Airflow dedupes watchers by this hash: the same watcher written another way is the same trigger
    same = OneDriveChangeTrigger(
        path="incoming/*.csv",
        onedrive_conn_id="finance_drive",
        kinds=("created", "deleted", "created"),
        stable_for=30.0,
        case_sensitive=True,
        poll_interval=120.0,
    )
    assert BaseEventTrigger.hash(*same.serialize()) == BaseEventTrigger.hash(classpath, kwargs)
    assert trigger.shared_stream_key() == same.shared_stream_key()
    other_folder = OneDriveChangeTrigger(path="other", onedrive_conn_id="finance_drive", poll_interval=120)
    assert other_folder.shared_stream_key() == trigger.shared_stream_key()  # one feed per drive, any folder
    other_interval = OneDriveChangeTrigger(path="x", onedrive_conn_id="finance_drive", poll_interval=60)
    assert other_interval.shared_stream_key() != trigger.shared_stream_key()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kinds": ["renamed"]}, "kinds"),
        ({"kinds": []}, "kinds"),
        ({"path": "in/[a-"}, None),
        ({"path": "in//x/*.csv"}, "doubled"),
        ({"path": "in/*.csv", "recursive": True}, "recursive"),
        ({"stable_for": -1}, "stable_for"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"path": "bad:name/*.csv"}, None),
    ],
)
def test_bad_input_is_a_typed_error_before_any_request(drive, kwargs, message):
    arguments = {"path": "incoming/*.csv", **kwargs}
    if kwargs.get("path") == "in/[a-":  # an unclosed [ is a literal: a valid pattern, not an error
        OneDriveChangeTrigger(**arguments)
        assert drive.requests == []
        return
    with pytest.raises(OneDriveValidationError) as caught:
        OneDriveChangeTrigger(**arguments)
    assert isinstance(caught.value, ValueError)
    if message:
        assert message in str(caught.value)
    assert drive.requests == []


# -- behaviour ---------------------------------------------------------------------------------------------------
def test_changes_only_glob_and_kinds(drive):
    seed_old(drive, "incoming/old.csv", b"there before")

    async def scenario() -> None:
        feed = Feed()
        csv = watcher(path="incoming/*.csv")
        deletions = watcher(path="incoming/*.csv", kinds=["deleted"])
        start = await feed.next()
        assert start.changes == ()
        assert await csv.feed(start) == [] and await deletions.feed(start) == []

        drive.put_file("incoming/new.csv", b"a,b\n1,2\n")
        drive.put_file("incoming/notes.txt", b"not a csv")
        drive.put_file("elsewhere/new.csv", b"other folder")
        drive.put_file("incoming/deeper/x.csv", b"one level too deep")
        round_ = await feed.next()
        [event] = await csv.feed(round_)
        new = drive.item("incoming/new.csv")
        assert event == {
            "kind": "created",
            "path": "incoming/new.csv",
            "id": new.id,
            "etag": event["etag"],
            "size": 8,
            "quick_xor_hash": new.blob.hashes["quickXorHash"],
            "modified": event["modified"],
            "drive_id": drive.drive_id,
        }
        assert event["etag"] and event["modified"].endswith("Z")
        assert await deletions.feed(round_) == []

        # nothing changed: nothing fires, though old.csv and new.csv are still there
        quiet = await feed.next()
        assert await csv.feed(quiet) == [] and await deletions.feed(quiet) == []

        drive.put_file("incoming/old.csv", b"rewritten")
        drive.delete("incoming/new.csv")
        round_ = await feed.next()
        assert [(e["kind"], e["path"]) for e in await csv.feed(round_)] == [("modified", "incoming/old.csv")]
        [gone] = await deletions.feed(round_)
        assert (gone["kind"], gone["path"], gone["id"], gone["size"]) == ("deleted", "incoming/new.csv", new.id, None)
        await csv.stop()
        await deletions.stop()
        await feed.close()

    asyncio.run(scenario())


def test_recursive_folder_and_a_deleted_folder(drive):
    seed_old(drive, "data/2024/old.parquet", b"PAR1 old")

    async def scenario() -> None:
        feed = Feed()
        everything = watcher(path="data", recursive=True, kinds=["created", "modified", "deleted"])
        top_only = watcher(path="data")
        await everything.feed(start := await feed.next())
        await top_only.feed(start)
        drive.put_file("data/2024/03/new.parquet", b"PAR1 new")
        drive.put_file("data/top.parquet", b"PAR1 top")
        round_ = await feed.next()
        assert sorted(e["path"] for e in await everything.feed(round_)) == [
            "data/2024/03/new.parquet",
            "data/top.parquet",
        ]
        assert [e["path"] for e in await top_only.feed(round_)] == ["data/top.parquet"]
        drive.delete("data/2024")  # a whole folder: the files in it were known, so their deletion fires
        fired = await everything.feed(await feed.next())
        assert sorted((e["kind"], e["path"]) for e in fired) == [
            ("deleted", "data/2024/03/new.parquet"),
            ("deleted", "data/2024/old.parquet"),
        ]
        await everything.stop()
        await top_only.stop()
        await feed.close()

    asyncio.run(scenario())


def test_a_file_still_being_written_fires_once_it_is_stable(drive):
    async def scenario() -> None:
        feed = Feed()
        stable = watcher(path="incoming/*.csv", stable_for=60)
        await stable.feed(await feed.next())
        drive.put_file("incoming/big.csv", b"part 1")
        assert await stable.feed(await feed.next()) == []  # just written
        drive.advance_time(30)
        drive.put_file("incoming/big.csv", b"part 1, part 2")  # still growing: the quiet period starts again
        assert await stable.feed(await feed.next()) == []
        drive.advance_time(45)  # 75 s after the first write, 45 s after the last
        assert await stable.feed(await feed.next()) == []
        drive.advance_time(20)  # 65 s after the last write
        [event] = await stable.feed(await feed.next())
        assert (event["kind"], event["path"], event["size"]) == ("created", "incoming/big.csv", 14)
        assert await stable.feed(await feed.next()) == []  # and only once
        await stable.stop()
        await feed.close()

    asyncio.run(scenario())


def test_restart_from_the_stored_position_neither_replays_nor_misses(drive):
    store = MemoryAssetStateStore()

    async def first_life() -> None:
        feed = Feed()
        before = watcher(store, path="incoming/*.csv", stable_for=60)
        await before.feed(await feed.next())
        drive.advance_time(-120)
        drive.put_file("incoming/a.csv", b"seen before the restart")
        drive.advance_time(120)
        drive.put_file("incoming/pending.csv", b"not stable yet at the restart")
        assert [e["path"] for e in await before.feed(await feed.next())] == ["incoming/a.csv"]
        await before.stop()
        await feed.close()

    asyncio.run(first_life())
    assert store.values[STATE_KEY]["delta_link"]
    assert [p["path"] for p in store.values[STATE_KEY]["pending"]] == ["incoming/pending.csv"]

    # while no triggerer runs: a new file arrives, and both it and pending.csv become stable
    drive.put_file("incoming/b.csv", b"arrived during the restart")
    drive.advance_time(61)

    async def second_life() -> list[dict[str, Any]]:
        feed = Feed()  # a new feed starts at token=latest: it alone would miss b.csv
        after = watcher(store, path="incoming/*.csv", stable_for=60)
        start = await feed.next()
        drive.put_file("incoming/c.csv", b"after the feed's start, before the watcher's catch-up")
        drive.advance_time(61)
        fired = await after.feed(start)  # the catch-up from the stored position reports c.csv too
        assert await after.feed(await feed.next()) == []  # the feed's round with c.csv again fires nothing
        await after.stop()
        await feed.close()
        return fired

    fired = asyncio.run(second_life())
    assert sorted((e["kind"], e["path"]) for e in fired) == [
        ("created", "incoming/b.csv"),
        ("created", "incoming/c.csv"),
        ("created", "incoming/pending.csv"),
    ]


def test_watchers_restarting_from_one_position_share_one_catch_up(drive):
    stores = [MemoryAssetStateStore() for _ in range(10)]

    async def first_life() -> None:
        feed = Feed()
        watchers = [watcher(store, path=f"in/w{i}/*.csv") for i, store in enumerate(stores)]
        start = await feed.next()
        for w in watchers:
            await w.feed(start)
            await w.stop()
        await feed.close()

    asyncio.run(first_life())
    for index in range(10):
        drive.put_file(f"in/w{index}/during.csv", b"arrived while the triggerer was down")
    drive.clear_requests()

    async def second_life() -> list[list[dict[str, Any]]]:
        feed = Feed()
        watchers = [watcher(store, path=f"in/w{i}/*.csv") for i, store in enumerate(stores)]
        start = await feed.next()
        fired = list(await asyncio.gather(*(w.feed(start) for w in watchers)))
        for w in watchers:
            await w.stop()
        await feed.close()
        return fired

    fired = asyncio.run(second_life())
    assert [[e["path"] for e in f] for f in fired] == [[f"in/w{i}/during.csv"] for i in range(10)]
    # the new feed's token=latest, and one catch-up from the position all ten stored
    assert len(delta_requests(drive)) == 2


def test_410_resync_follows_location_and_reports_the_differences(drive):
    seed_old(drive, "incoming/stays.csv", b"unchanged")
    seed_old(drive, "incoming/goes.csv", b"deleted while the token is stale")

    async def scenario() -> None:
        feed = Feed()
        watch = watcher(path="incoming/*.csv", kinds=["created", "modified", "deleted"])
        await watch.feed(await feed.next())
        drive.invalidate_delta_tokens()
        drive.put_file("incoming/new.csv", b"written while the token is stale")
        drive.delete("incoming/goes.csv")
        fired = await watch.feed(await feed.next())
        assert sorted((e["kind"], e["path"]) for e in fired) == [
            ("created", "incoming/new.csv"),
            ("deleted", "incoming/goes.csv"),
        ]
        gone = [r for r in delta_requests(drive) if r.status == 410]
        assert len(gone) == 1
        after = delta_requests(drive)[delta_requests(drive).index(gone[0]) + 1]
        assert after.status == 200 and "token" not in after.query  # the Location: a fresh enumeration
        drive.put_file("incoming/later.csv", b"after the resync")
        assert [e["path"] for e in await watch.feed(await feed.next())] == ["incoming/later.csv"]
        await watch.stop()
        await feed.close()

    asyncio.run(scenario())


def test_no_feed_position_or_url_reaches_a_log_line_or_a_payload(drive, caplog):
    import logging
    from urllib.parse import parse_qs, urlsplit

    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # httpx logs each request's URL at INFO when allowed to
    store = MemoryAssetStateStore()

    async def scenario() -> list[dict[str, Any]]:
        feed = Feed()
        watch = watcher(store, path="incoming/*.csv", kinds=["created", "modified", "deleted"])
        await watch.feed(await feed.next())
        drive.put_file("incoming/a.csv", b"x")
        fired = await watch.feed(await feed.next())
        drive.invalidate_delta_tokens()  # the 410 path logs a warning too
        drive.delete("incoming/a.csv")
        fired += await watch.feed(await feed.next())
        await watch.stop()
        await feed.close()
        return fired

    fired = asyncio.run(scenario())
    assert [e["kind"] for e in fired] == ["created", "deleted"]
    assert all("://" not in str(value) for event in fired for value in event.values())
    token = parse_qs(urlsplit(store.values[STATE_KEY]["delta_link"]).query)["token"][0]
    assert any("HTTP Request: GET" in r.getMessage() and "/delta" in r.getMessage() for r in caplog.records)
    assert any("resyncing" in r.getMessage() for r in caplog.records)
    assert token not in caplog.text and "token=" not in caplog.text


def test_retry_after_is_honoured(drive):
    rule = drive.faults.add("status", status=429, code="TooManyRequests", retry_after=1, path=r"/delta$", nth=2)

    async def scenario() -> tuple[list[dict[str, Any]], float]:
        feed = Feed()
        watch = watcher(path="incoming/*.csv")
        await watch.feed(await feed.next())  # token=latest: the rule's first match
        drive.put_file("incoming/a.csv", b"x")
        loop = asyncio.get_running_loop()
        started = loop.time()
        round_ = await feed.next()  # 429, then the retry
        waited = loop.time() - started
        fired = await watch.feed(round_)
        await watch.stop()
        await feed.close()
        return fired, waited

    fired, waited = asyncio.run(scenario())
    assert rule.fired == 1
    assert [e["path"] for e in fired] == ["incoming/a.csv"]
    statuses = [r.status for r in delta_requests(drive)]
    assert statuses == [200, 429, 200]
    assert waited >= 1.0  # a lower bound only: the retry waited at least what Retry-After asked


# -- in the triggerer: shared streams in ack mode ---------------------------------------------------------------
class Triggerer:
    """Watchers run as Airflow's triggerer runs them: each subscribed to the real ``SharedStreamManager`` (which
    sees ``create_shared_stream_producer`` and runs the feed in ack mode), each event it fires bound to a
    persist seq the moment it leaves the trigger (``TriggerRunner.run_trigger``). :meth:`persist` is the
    supervisor confirming it has stored the events; :meth:`crash` drops everything with nothing confirmed.

    Waiting is on conditions (:meth:`until`); the clock only bounds a broken run."""

    def __init__(self, *, persist_as_it_goes: bool = False) -> None:
        from airflow.triggers.shared_stream import SharedStreamManager

        self.manager = SharedStreamManager(ack_timeout=3600)
        self.persist_as_it_goes = persist_as_it_goes
        self.fired: dict[int, list[dict[str, Any]]] = {}
        self.rounds: dict[int, int] = {}
        self.unconfirmed: list[int] = []
        self.unbound = 0  # events Airflow could not tie to a round: their persistence would gate nothing
        self.tasks: dict[int, asyncio.Future[None]] = {}
        self.crashed = False

    def start(self, trigger_id: int, trigger: OneDriveChangeTrigger) -> None:
        self.fired[trigger_id] = []
        self.rounds[trigger_id] = 0
        self.tasks[trigger_id] = asyncio.ensure_future(self._run(trigger_id, trigger))

    async def _counted(self, trigger_id: int, stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for item in stream:
            self.rounds[trigger_id] += 1
            yield item

    async def _run(self, trigger_id: int, trigger: OneDriveChangeTrigger) -> None:
        key = trigger.shared_stream_key()
        stream = self.manager.subscribe(trigger_id=trigger_id, trigger=trigger, key=key)
        try:
            async for event in trigger.filter_shared_stream(self._counted(trigger_id, stream)):
                seq = self.manager.bind_pending_event(trigger_id=trigger_id, key=key)
                if seq is None:
                    self.unbound += 1
                else:
                    self.unconfirmed.append(seq)
                self.fired[trigger_id].append(event.payload)
        finally:
            if not self.crashed:
                await self.manager.unsubscribe(trigger_id, key)

    def persist(self) -> None:
        seqs, self.unconfirmed = self.unconfirmed, []
        self.manager.confirm_persisted(seqs)

    async def until(self, condition: Any, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while True:
            for task in self.tasks.values():
                if task.done():
                    task.result()  # a watcher's error
                    raise AssertionError("a watcher ended")
            if self.persist_as_it_goes:
                self.persist()
            if condition():
                return
            assert loop.time() < deadline, f"timed out waiting until {what}"
            await asyncio.sleep(0.01)

    async def polls(self, drive, count: int) -> None:
        """Wait until the feed has polled the drive ``count`` more times."""
        seen = len(delta_requests(drive))
        await self.until(lambda: len(delta_requests(drive)) >= seen + count, f"{count} more polls")

    async def stop(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    def crash(self) -> None:
        """The process dies: no confirmation, no unsubscribe, no shutdown (the caller's event loop ends next)."""
        self.crashed = True
        for task in self.tasks.values():
            task.cancel()


def change_trigger(store: MemoryAssetStateStore, **kwargs: Any) -> OneDriveChangeTrigger:
    trigger = OneDriveChangeTrigger(poll_interval=0.05, **kwargs)
    trigger.asset_state_store = store
    return trigger


def link(store: MemoryAssetStateStore) -> str | None:
    """The stored position. The emulator's deltaLink names the drive's change sequence, so every round without
    a change hands back the same link: "the link before a change" is one value."""
    value = store.values.get(STATE_KEY)
    return value["delta_link"] if value else None


def summary(events: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return sorted((e["kind"], e["path"], e["id"], e["etag"]) for e in events)


def test_events_not_stored_before_a_crash_fire_again_after_the_restart(drive):
    stores = [MemoryAssetStateStore(), MemoryAssetStateStore()]
    paths = ["in/a/*.csv", "in/b/*.csv"]
    before: list[str | None] = []

    async def first_life() -> dict[int, list[dict[str, Any]]]:
        triggerer = Triggerer()
        for index, store in enumerate(stores):
            triggerer.start(index, change_trigger(store, path=paths[index]))
        await triggerer.until(lambda: all(link(s) for s in stores), "every watcher saved its start position")
        before.extend(link(s) for s in stores)
        drive.put_file("in/a/x.csv", b"1,2\n")
        drive.put_file("in/b/y.csv", b"3,4\n")
        await triggerer.until(lambda: all(triggerer.fired.values()), "both watchers fired")
        await triggerer.polls(drive, 3)
        # the feed went on polling, but no position moved past the change: its events are not stored yet
        assert [link(s) for s in stores] == before
        assert triggerer.unbound == 0 and len(triggerer.unconfirmed) == 2
        triggerer.crash()
        return triggerer.fired

    lost = asyncio.run(first_life())
    assert [[e["path"] for e in lost[i]] for i in range(2)] == [["in/a/x.csv"], ["in/b/y.csv"]]

    async def second_life() -> dict[int, list[dict[str, Any]]]:
        triggerer = Triggerer()
        for index, store in enumerate(stores):  # new trigger instances, the same asset state stores
            triggerer.start(index, change_trigger(store, path=paths[index]))
        await triggerer.until(lambda: all(triggerer.fired.values()), "both watchers fired again")
        triggerer.persist()
        await triggerer.until(lambda: all(link(s) != b for s, b in zip(stores, before, strict=True)), "stored")
        await triggerer.stop()
        return triggerer.fired

    again = asyncio.run(second_life())
    # the same changes, the same versions: at least once
    assert [summary(again[i]) for i in range(2)] == [summary(lost[i]) for i in range(2)]


def test_stored_events_are_not_replayed_after_a_crash(drive):
    store = MemoryAssetStateStore()

    async def first_life() -> list[dict[str, Any]]:
        triggerer = Triggerer()
        triggerer.start(0, change_trigger(store, path="in/*.csv"))
        await triggerer.until(lambda: link(store), "the start position is saved")
        start = link(store)
        drive.put_file("in/x.csv", b"stored before the crash")
        await triggerer.until(lambda: triggerer.fired[0], "the watcher fired")
        await triggerer.polls(drive, 3)
        assert link(store) == start  # held until Airflow has stored the event
        triggerer.persist()
        await triggerer.until(lambda: link(store) != start, "the position moved past the stored event")
        assert triggerer.unbound == 0
        triggerer.crash()
        return triggerer.fired[0]

    stored = asyncio.run(first_life())
    assert [e["path"] for e in stored] == ["in/x.csv"]
    drive.put_file("in/z.csv", b"arrived while the triggerer was down")

    async def second_life() -> list[dict[str, Any]]:
        triggerer = Triggerer(persist_as_it_goes=True)
        triggerer.start(0, change_trigger(store, path="in/*.csv"))
        position = link(store)
        await triggerer.until(lambda: triggerer.fired[0] and link(store) != position, "z.csv fired and stored")
        await triggerer.polls(drive, 2)
        await triggerer.stop()
        return triggerer.fired[0]

    assert [e["path"] for e in asyncio.run(second_life())] == ["in/z.csv"]


def test_watchers_of_one_drive_share_one_delta_poll(drive):
    """In ack mode too, N watchers through Airflow's SharedStreamManager cost one request per round."""
    watchers = 50
    stores = [MemoryAssetStateStore() for _ in range(watchers)]

    async def scenario() -> Triggerer:
        triggerer = Triggerer(persist_as_it_goes=True)
        triggers = [change_trigger(stores[i], path=f"in/w{i}/*.csv") for i in range(watchers)]
        assert len({t.shared_stream_key() for t in triggers}) == 1
        for index, trigger in enumerate(triggers):
            triggerer.start(index, trigger)
        await triggerer.until(lambda: all(link(s) for s in stores), "every watcher saved its start position")
        start = [link(s) for s in stores]
        for index in range(watchers):
            drive.put_file(f"in/w{index}/file.csv", f"{index}".encode())
        await triggerer.until(
            lambda: all(link(s) != b for s, b in zip(stores, start, strict=True)), "every position moved"
        )
        await triggerer.polls(drive, 2)
        await triggerer.stop()
        return triggerer

    triggerer = asyncio.run(scenario())
    assert [[e["path"] for e in triggerer.fired[i]] for i in range(watchers)] == [
        [f"in/w{i}/file.csv"] for i in range(watchers)
    ]
    assert triggerer.unbound == 0
    requests = delta_requests(drive)
    assert sum(1 for r in requests if "token=latest" in r.path) == 1
    rounds = max(triggerer.rounds.values())  # the rounds a watcher read, its start included
    # one request per round (the first is token=latest; at most one more in flight when the watchers stopped)
    assert rounds <= len(requests) <= rounds + 1
    assert len(requests) < watchers


def test_a_watcher_that_fires_nothing_still_moves_its_position(drive):
    stores = {"a": MemoryAssetStateStore(), "quiet": MemoryAssetStateStore()}

    async def scenario() -> Triggerer:
        triggerer = Triggerer()
        triggerer.start(0, change_trigger(stores["a"], path="in/a/*.csv"))
        triggerer.start(1, change_trigger(stores["quiet"], path="in/quiet/*.csv"))
        await triggerer.until(lambda: all(link(s) for s in stores.values()), "both start positions saved")
        start = {name: link(s) for name, s in stores.items()}

        # a change neither watcher wants: the round fires nothing, and both positions move past it, with no
        # confirmation at all
        drive.put_file("elsewhere/z.csv", b"nobody's")
        await triggerer.until(lambda: all(link(s) != start[n] for n, s in stores.items()), "both moved past z")
        assert triggerer.fired == {0: [], 1: []}
        after_z = {name: link(s) for name, s in stores.items()}

        # a change only the first wants: the quiet watcher filters the round out; the first holds its position
        # until its event is stored; then both move past the round
        drive.put_file("in/a/x.csv", b"for a")
        await triggerer.until(lambda: triggerer.fired[0], "the first watcher fired")
        await triggerer.polls(drive, 3)
        assert link(stores["a"]) == after_z["a"]
        triggerer.persist()
        await triggerer.until(lambda: all(link(s) != after_z[n] for n, s in stores.items()), "both moved past x")
        assert triggerer.fired[1] == [] and triggerer.unbound == 0
        await triggerer.stop()
        return triggerer

    triggerer = asyncio.run(scenario())
    assert [e["path"] for e in triggerer.fired[0]] == ["in/a/x.csv"]
    assert link(stores["a"]) == link(stores["quiet"])  # one feed, one position


def test_a_round_some_watcher_failed_on_moves_no_position(caplog):
    """``advance`` as Airflow calls it: a round with a failed watcher (ack timeout, overflow, or left before
    reading it) saves nothing, since Airflow does not say whose the failure is; otherwise each watcher's latest
    position in the batch is saved, and a store that cannot save is logged without its value."""
    from airflow.triggers.shared_stream import AdvanceItem, AdvanceOutcome

    from airflow_provider_onedrive.triggers.onedrive import Delivery
    from airflow_provider_onedrive.triggers.positions import ChangeFeedProducer

    class BrokenStore(MemoryAssetStateStore):
        async def aset(self, key: str, value: Any) -> None:
            raise ValueError(f"cannot store {value!r}")

    def delivery(positions: list[tuple[Any, str]]) -> Delivery:
        item = Delivery(Round((), "https://graph.example/delta?token=x", 0.0, 0.0, "d"))
        for store, position in positions:
            item.hold(store, {"delta_link": position})
        return item

    first, second, broken = MemoryAssetStateStore(), MemoryAssetStateStore(), BrokenStore()
    producer = ChangeFeedProducer(OneDriveChangeTrigger, {})
    clean, failed = AdvanceOutcome(acked=2, failed=0), AdvanceOutcome(acked=1, failed=1)

    async def scenario() -> None:
        await producer.advance([AdvanceItem(delivery([(first, "p1"), (second, "p1")]), failed)])
        assert first.writes == second.writes == 0
        await producer.advance(
            [
                AdvanceItem(delivery([(first, "p2"), (second, "p2")]), clean),
                AdvanceItem(delivery([(first, "p3"), (second, "p3")]), failed),
                AdvanceItem(delivery([(first, "p4"), (broken, "secret-position")]), clean),
            ]
        )

    asyncio.run(scenario())
    assert (first.values[STATE_KEY], first.writes) == ({"delta_link": "p4"}, 1)  # the latest clean one, once
    assert (second.values[STATE_KEY], second.writes) == ({"delta_link": "p2"}, 1)
    assert "1 of 3 watcher position(s) not saved (ValueError)" in caplog.text
    assert "secret-position" not in caplog.text
