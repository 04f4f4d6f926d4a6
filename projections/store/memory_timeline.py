"""The timeline query's rule over entries held in memory, for timelines folded as of a past point.

The view stores answer the same query in SQL, over their indexes; the view store contract proves
every adapter pages exactly as this rule (tests/contract/viewstore_timeline_page_contract.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from crm.instants import sortable_instant
from projections.store.queries import PageCursor, TimelinePage, TimelineQuery, encode_page_token
from projections.timeline import TimelineEntry


def timeline_page(entries: Iterable[TimelineEntry], query: TimelineQuery) -> TimelinePage:
    """One page of `entries` as the view store's `timeline` pages it: in the order things
    happened (occurred_at in UTC, ties by global position), filtered, after the token's cursor."""
    since = None if query.since is None else sortable_instant(query.since)
    until = None if query.until is None else sortable_instant(query.until)
    after = query.after
    keyed: list[tuple[tuple[str, int], TimelineEntry]] = []
    for entry in entries:
        key = (sortable_instant(entry.occurred_at), entry.global_position)
        if query.channels and entry.channel not in query.channels:
            continue
        if query.kinds and entry.kind not in query.kinds:
            continue
        if query.case_id and entry.case_id != query.case_id:
            continue
        if (since is not None and key[0] < since) or (until is not None and key[0] >= until):
            continue
        if after is not None:
            cursor = (after.occurred_utc, after.position)
            if (key <= cursor) if not query.newest_first else (key >= cursor):
                continue
        keyed.append((key, entry))
    keyed.sort(key=lambda item: item[0], reverse=query.newest_first)
    page = [entry for _, entry in keyed[: query.page_size]]
    if len(keyed) <= query.page_size:
        return TimelinePage(page)
    last = page[-1]
    cursor_out = PageCursor(sortable_instant(last.occurred_at), last.global_position)
    return TimelinePage(page, encode_page_token(cursor_out))
