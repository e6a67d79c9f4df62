"""Where change watchers' feed positions are saved when the triggerer runs their shared feed in ack mode.

Airflow's shared streams in ack mode (``BaseEventTrigger.create_shared_stream_producer``, Airflow 3.3+) hand each
raw event of a producer to every subscribed trigger, and call the producer's ``advance`` with an event once every
trigger that received it has moved past it (asked for the next one, or left) and the supervisor has confirmed
that the trigger events derived from it are stored in the metadata database. A watcher that fires nothing for a
round has moved past it as soon as it asks for the next round. Advances come in fan-out order.

So a watcher does not save its position itself: it leaves the position it reached with a round on the round
(:meth:`~airflow_provider_onedrive.triggers.onedrive.Delivery.hold`), and :class:`ChangeFeedProducer` saves it in
``advance``. The stored position is then never past a change whose events Airflow has not stored; after a crash
the watcher resumes from there and reports those changes again (at least once).

Imports Airflow's shared-stream module: loaded only when the triggerer asks for the producer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_onedrive.compat import SharedStreamProducer
from airflow_provider_onedrive.triggers.onedrive import STATE_KEY, Delivery, feed_log

if TYPE_CHECKING:
    from airflow_provider_onedrive.compat import AdvanceItem

__all__ = ["ChangeFeedProducer"]


class ChangeFeedProducer(SharedStreamProducer):
    """The shared poll of one drive's feed in ack mode: one :class:`Delivery` per round, positions saved in
    :meth:`advance`.

    :param trigger_class: the watcher class whose ``open_shared_stream`` polls the feed.
    :param kwargs: the serialized arguments of one watcher of the group (connection and interval are used).
    """

    def __init__(self, trigger_class: Any, kwargs: dict[str, Any]) -> None:
        self.trigger_class = trigger_class
        self.kwargs = dict(kwargs)
        self._rounds: Any = None

    async def open_stream(self) -> AsyncIterator[tuple[Delivery, Delivery]]:
        """Each round of the feed, as the raw event and as the payload ``advance`` gets back."""
        self._rounds = self.trigger_class.open_shared_stream(self.kwargs)
        async for round_ in self._rounds:
            delivery = Delivery(round_)
            yield delivery, delivery

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        """Save the positions the watchers reached with these rounds (the latest one per watcher).

        A round some watcher failed on (ack timeout: its events were not confirmed stored; queue overflow; or it
        left before reading the round) moves no position: Airflow counts the failures but does not say whose they
        are. The watchers that did not fail move on with the next round that all of its watchers resolved; the
        failed one is out of every later round, so it resumes from its last saved position when it starts again.
        """
        latest: dict[int, tuple[Any, dict[str, Any]]] = {}
        for item in batch:
            if item.outcome.failed or not isinstance(item.broker_payload, Delivery):
                continue
            for store, value in item.broker_payload.positions:
                latest.pop(id(store), None)
                latest[id(store)] = (store, value)
        if not latest:
            return
        saves = [store.aset(STATE_KEY, value) for store, value in latest.values()]
        results = await asyncio.gather(*saves, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            # Never the exception's text: it may quote the value, and the value holds the feed's position.
            feed_log.warning(
                "OneDrive change feed: %d of %d watcher position(s) not saved (%s); they resume from the "
                "previous one after a restart",
                len(failures),
                len(saves),
                ", ".join(sorted({type(f).__name__ for f in failures})),
            )

    async def aclose(self) -> None:
        rounds, self._rounds = self._rounds, None
        if rounds is not None:
            await rounds.aclose()
