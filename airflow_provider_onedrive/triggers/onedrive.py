"""The provider's triggers: OneDriveFileTrigger (the deferred half of OneDriveFileSensor) and
OneDriveChangeTrigger (an event trigger for ``AssetWatcher``: DAGs scheduled on a drive's changes).

Nothing here may block the triggerer's event loop: Graph is polled through :mod:`.async_graph` (httpx, shared
pooled clients and listings per connection, blocking set-up in worker threads), and waits are ``asyncio.sleep``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Hashable
from typing import TYPE_CHECKING, Any

from airflow_provider_onedrive.compat import BaseEventTrigger, BaseTrigger, TriggerEvent
from airflow_provider_onedrive.errors import OneDriveError, OneDriveValidationError
from airflow_provider_onedrive.matching import FileCriteria
from airflow_provider_onedrive.triggers.async_graph import (
    MAX_SHARED_AGE,
    MAX_START_JITTER,
    Poller,
    TriggerSession,
    sessions,
)
from airflow_provider_onedrive.triggers.delta import DeltaFeed, Round
from airflow_provider_onedrive.triggers.watch import ChangeWatch, parse_kinds, watch_pattern

if TYPE_CHECKING:
    from airflow_provider_onedrive.compat import SharedStreamProducer

__all__ = ["STATE_KEY", "Delivery", "OneDriveChangeTrigger", "OneDriveFileTrigger"]

#: The asset state store key under which a change watcher keeps its position in the drive's change feed.
STATE_KEY = "onedrive_change_trigger"

feed_log = logging.getLogger("airflow_provider_onedrive.triggers.changes")


class Delivery:
    """One round of the shared feed as the triggerer hands it to the watchers in ack mode, with the positions
    the watchers reached with it: saved by :class:`~.positions.ChangeFeedProducer` once Airflow has stored the
    events the watchers fired for the round, never before."""

    __slots__ = ("positions", "round")

    def __init__(self, round_: Round) -> None:
        self.round = round_
        #: (asset state store, value to save) per watcher that has finished the round.
        self.positions: list[tuple[Any, dict[str, Any]]] = []

    def hold(self, store: Any, value: dict[str, Any]) -> None:
        self.positions.append((store, value))


class OneDriveFileTrigger(BaseTrigger):
    """Poll a drive until files match, then fire ``{"status": "success", "matches": [...]}``.

    Errors fire ``{"status": "error", "message": ...}`` (never a secret). Parameters are those of
    :class:`~airflow_provider_onedrive.sensors.onedrive.OneDriveFileSensor`, already rendered.

    :param poke_interval: seconds between polls.
    """

    def __init__(
        self,
        *,
        path: str,
        onedrive_conn_id: str = "onedrive_default",
        min_size: int | None = None,
        modified_after: str | None = None,
        stable_for: float = 0.0,
        case_sensitive: bool = False,
        poke_interval: float = 60.0,
    ) -> None:
        super().__init__()
        self.path = path
        self.onedrive_conn_id = onedrive_conn_id
        self.min_size = min_size
        self.modified_after = modified_after
        self.stable_for = stable_for
        self.case_sensitive = case_sensitive
        self.poke_interval = poke_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "path": self.path,
                "onedrive_conn_id": self.onedrive_conn_id,
                "min_size": self.min_size,
                "modified_after": self.modified_after,
                "stable_for": self.stable_for,
                "case_sensitive": self.case_sensitive,
                "poke_interval": self.poke_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            criteria = FileCriteria(self.path, self.min_size, self.modified_after, self.stable_for, self.case_sensitive)
            session = await sessions.get(self.onedrive_conn_id)
            matches = await self._wait(session, criteria)
        except OneDriveError as exc:
            yield TriggerEvent({"status": "error", "message": str(exc)})
            return
        except Exception as exc:  # anything unexpected ends the wait with a message, not a silent hang
            self.log.exception("OneDriveFileTrigger for %s failed", self.path)
            yield TriggerEvent({"status": "error", "message": f"{type(exc).__name__}: {exc}"})
            return
        yield TriggerEvent({"status": "success", "matches": matches})

    async def _wait(self, session: TriggerSession, criteria: FileCriteria) -> list[dict[str, Any]]:
        # Spread the first polls: a triggerer (re)starting many triggers at once must not stampede Graph,
        # nor run every trigger's first request in one turn of the event loop.
        async with session.attached():
            await asyncio.sleep(random.uniform(0, min(self.poke_interval, MAX_START_JITTER)))
            poller = Poller(session, criteria, max_age=min(self.poke_interval / 2, MAX_SHARED_AGE))
            while True:
                records = await poller.candidates()
                matches = criteria.select(records, time.time())
                if matches:
                    self.log.info("Found %d matching file(s) for %s", len(matches), self.path)
                    return matches
                await asyncio.sleep(self.poke_interval)


class OneDriveChangeTrigger(BaseEventTrigger):
    """Fire one event per change of a file in a drive: the trigger of an ``AssetWatcher``.

    Reads the drive's Graph delta feed (``/root/delta``, from ``token=latest``: changes only, never what was
    already there). Every watcher of one connection and ``poll_interval`` shares ONE poll of that feed in the
    triggerer (Airflow's shared streams, in ack mode), however many there are. The position in the feed is kept
    in the asset state store, and moves past a change only once Airflow has stored the events the change fired
    (or the watcher found nothing in it): a triggerer restart, even a crash, resumes where the watcher was and
    misses nothing; a change whose events were not stored yet fires again (at least once).

    Event payload: ``{"kind": "created" | "modified" | "deleted", "path", "id", "etag", "size",
    "quick_xor_hash", "modified", "drive_id"}`` (size, hash, eTag and modified are None for a deletion). No URL
    and no token is ever in a payload or a log line.

    :param path: a folder (``incoming``: its files) or a glob (``incoming/*.csv``, ``data/**/*.parquet``),
        relative to the drive root; ``""`` is the root.
    :param kinds: which changes fire: any of ``created``, ``modified``, ``deleted`` (default the first two).
    :param recursive: for a folder path, also watch its subfolders (a glob says this with ``**`` instead).
    :param stable_for: seconds a file's size and eTag must stay unchanged before it fires, so a file still
        being written fires once, when it is complete (the sensor's rule, on Graph's clock).
    :param case_sensitive: match names exactly (OneDrive names are case-insensitive, so the default is not).
    :param poll_interval: seconds between two polls of the drive's feed.
    :param onedrive_conn_id: the ``onedrive`` connection (it names the drive).
    """

    def __init__(
        self,
        *,
        path: str,
        onedrive_conn_id: str = "onedrive_default",
        kinds: Any = ("created", "modified"),
        recursive: bool = False,
        stable_for: float = 0.0,
        case_sensitive: bool = False,
        poll_interval: float = 60.0,
    ) -> None:
        super().__init__()
        if not isinstance(stable_for, int | float) or isinstance(stable_for, bool) or stable_for < 0:
            raise OneDriveValidationError(f"stable_for must be a non-negative number of seconds, got {stable_for!r}")
        if not isinstance(poll_interval, int | float) or isinstance(poll_interval, bool) or poll_interval <= 0:
            raise OneDriveValidationError(f"poll_interval must be a positive number of seconds, got {poll_interval!r}")
        if not isinstance(onedrive_conn_id, str) or not onedrive_conn_id:
            raise OneDriveValidationError("onedrive_conn_id must name an Airflow connection")
        self.path = path
        self.onedrive_conn_id = onedrive_conn_id
        self.kinds = list(parse_kinds(kinds))
        self.recursive = bool(recursive)
        self.stable_for = float(stable_for)
        self.case_sensitive = bool(case_sensitive)
        self.poll_interval = float(poll_interval)
        self.glob = watch_pattern(path, self.recursive)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "path": self.path,
                "onedrive_conn_id": self.onedrive_conn_id,
                "kinds": list(self.kinds),
                "recursive": self.recursive,
                "stable_for": self.stable_for,
                "case_sensitive": self.case_sensitive,
                "poll_interval": self.poll_interval,
            },
        )

    def shared_stream_key(self) -> Hashable:
        """Watchers of one connection (so one drive) and one interval share one poll of its feed."""
        return ("airflow_provider_onedrive.delta", self.onedrive_conn_id, self.poll_interval)

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> SharedStreamProducer:
        """Ack mode: the triggerer polls the feed through :class:`~.positions.ChangeFeedProducer`, which saves
        each watcher's position once the events it fired for a round are stored (Airflow 3.3+)."""
        from airflow_provider_onedrive.triggers.positions import ChangeFeedProducer

        return ChangeFeedProducer(cls, kwargs)

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Round]:
        """The drive's feed, polled every ``poll_interval`` seconds: first the starting position (a round with
        no changes), then one :class:`~.delta.Round` per poll. A failed poll (after the retry policy) is logged
        and tried again at the next interval from the same position."""
        conn_id = str(kwargs.get("onedrive_conn_id") or "onedrive_default")
        interval = float(kwargs.get("poll_interval") or 60.0)
        session = await sessions.get(conn_id)
        async with session.attached():
            feed = DeltaFeed(session)
            while True:
                try:
                    link, since = await feed.latest()
                    break
                except OneDriveError as exc:
                    feed_log.warning("OneDrive change feed (connection %s) cannot start: %s", conn_id, exc)
                    await asyncio.sleep(interval)
            yield Round((), link, since, since, feed.drive_id)
            while True:
                await asyncio.sleep(interval)
                try:
                    round_ = await feed.round(link, since)
                except OneDriveError as exc:
                    feed_log.warning(
                        "OneDrive change feed (connection %s): %s; next try in %.0f s", conn_id, exc, interval
                    )
                    continue
                link, since = round_.delta_link, round_.server_now
                yield round_

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        """This watcher's events from the shared feed: :class:`Delivery` items in ack mode (the position is left
        on the delivery, for the producer to save), plain :class:`~.delta.Round` items otherwise (``run()``:
        the position is saved once the round's events have left the trigger)."""
        watch = ChangeWatch(self.glob, tuple(self.kinds), self.stable_for, self.case_sensitive)
        session = await sessions.get(self.onedrive_conn_id)
        async with session.attached():
            state = await self._load_state()
            if state is not None:
                watch.restore_pending(state.get("pending"))
            if "deleted" in self.kinds:
                records = await Poller(session, FileCriteria(self.glob.text), max_age=MAX_SHARED_AGE).candidates()
                watch.seed(records, settle=state is None)
            async for item in shared_stream:
                delivery = item if isinstance(item, Delivery) else None
                round_: Round = delivery.round if delivery is not None else item
                if state is not None:
                    round_ = await self._catch_up(session, state, round_)
                    state = None
                # Every event of the round is yielded before the next round is asked for: that is how Airflow
                # ties the events to this round, and holds the round's advance until they are stored.
                for payload in watch.apply(round_):
                    yield TriggerEvent(payload)
                position = {
                    "delta_link": round_.delta_link,
                    "since": round_.server_now,
                    "pending": watch.pending_state(),
                }
                if delivery is None:
                    await self._save_state(position)
                elif self.asset_state_store is not None:
                    delivery.hold(self.asset_state_store, position)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Standalone: this watcher's own poll (the triggerer uses the shared one instead)."""
        _, kwargs = self.serialize()
        async for event in self.filter_shared_stream(type(self).open_shared_stream(kwargs)):
            yield event

    async def _catch_up(self, session: TriggerSession, state: dict[str, Any], first: Round) -> Round:
        """After a restart: the changes since the stored position (a superset of the shared feed's first
        round, which started later); versions seen twice fire once. Watchers that stored the same position
        (all watchers of a drive that saw the same rounds) share one catch-up."""
        try:
            link, since = str(state["delta_link"]), float(state.get("since") or 0)
            fetch = lambda: DeltaFeed(session).round(link, since)  # noqa: E731
            caught_up: Round = await session.shared(("onedrive-catch-up", link, since), MAX_SHARED_AGE, fetch)
            return caught_up
        except (OneDriveError, KeyError, TypeError, ValueError) as exc:
            self.log.warning("Cannot resume %s from its stored position (%s); watching from now on", self.path, exc)
            return first

    async def _load_state(self) -> dict[str, Any] | None:
        store = self.asset_state_store
        if store is None:
            return None
        try:
            value = await store.aget(STATE_KEY)
        except ValueError:  # watched for several assets: no single store to keep the position in
            self.log.warning("%s is watched for several assets; its feed position is not kept", self.path)
            self.asset_state_store = None
            return None
        return value if isinstance(value, dict) and value.get("delta_link") else None

    async def _save_state(self, value: dict[str, Any]) -> None:
        if self.asset_state_store is not None:
            await self.asset_state_store.aset(STATE_KEY, value)
