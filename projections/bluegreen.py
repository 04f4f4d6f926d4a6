"""Blue/green rebuild of a projection: a new generation fills beside the live one, then serves.

The live generation keeps answering queries and the live writer (in-process projector or Kafka
worker) keeps applying to it while the new generation replays the event store from event 0. Once
the replay has caught up with the store's head, `ViewStore.switch` applies in one write
transaction whatever the new generation still lacks of the live one and makes it the active one:
readers see the old views or the new, never a half-built one, and the live writer continues in
the new generation from its checkpoint there. The old generation is dropped afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

from crm.envelope import RecordedEvent
from crm.eventcodec import EventCodec
from crm.eventstore.port import EventStore
from projections.catalogue import Batch, projection_named
from projections.runner import REBUILD_BATCH_SIZE, Progress, decode_batch
from projections.store.port import ViewStore


@dataclass(frozen=True)
class Switched:
    """What a blue/green rebuild did: the generation that serves now and the one it replaced."""

    projection: str
    generation: int
    replaced: int
    position: int  # where the new generation stood when it took over
    resumed_from: int  # 0, or the position an interrupted rebuild had reached


def rebuild_beside(
    store: EventStore,
    views: ViewStore,
    codec: EventCodec,
    projection: str,
    *,
    batch_size: int = REBUILD_BATCH_SIZE,
    progress: Progress | None = None,
    drop_old: bool = True,
) -> Switched:
    """Rebuild `projection` from event 0 into a new generation and switch queries to it.

    One rebuild of a projection at a time (`ViewStore.rebuild_lock`; a second is refused). A
    rebuild interrupted before its switch leaves the live generation serving, untouched; the
    next run continues the half-built generation from its checkpoint.
    """
    name = projection_named(projection).name
    with views.rebuild_lock(name):
        generation = views.begin_generation(name)
        position = resumed_from = views.checkpoint(name, generation=generation)
        done = 0
        with views.replaying():
            # Until a read comes back short: the replay has reached the store's head, and what
            # the live side appends meanwhile is little enough to apply inside the switch.
            while events := store.read_all(after=position, limit=batch_size):
                views.apply(decode_batch(codec, events), projections=(name,), generation=generation)
                position = events[-1].global_position
                done += len(events)
                if progress is not None:
                    progress(done, position)
                if len(events) < batch_size:
                    break

        def catch_up(after: int, upto: int) -> Batch:
            events: list[RecordedEvent] = []
            while batch := store.read_all(after=after, limit=batch_size):
                events.extend(event for event in batch if event.global_position <= upto)
                after = batch[-1].global_position
                if after >= upto:
                    break
            return decode_batch(codec, events)

        replaced = views.switch(name, generation, catch_up)
        reached = views.checkpoint(name, generation=generation)
    views.notify_changed()
    if drop_old:
        views.drop_generation(name, replaced)
    return Switched(name, generation, replaced, reached, resumed_from)
