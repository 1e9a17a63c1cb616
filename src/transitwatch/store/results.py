"""Writing an analysis result into the store (``upstreams --store``, ``outages --store``...)."""

from __future__ import annotations

import time
from typing import Any

from transitwatch.store import Store


def target_info(data: dict[str, Any]) -> dict[str, Any]:
    """What the store keeps about a target: who it is and how it is observed."""
    return {
        "spec": data["target"]["spec"],
        "country": data["target"]["country"],
        "asns": data["target"]["asns"],
        "prefixes": data["target"]["prefixes"],
        "collectors": data.get("collectors", []),
        "full_feed_peers": data.get("full_feed_peers"),
        "window": data.get("window"),
    }


def store_result(store: Store, data: dict[str, Any], source: str, now: float | None = None) -> list[str]:
    """Store the JSON of an upstream analysis; returns the ids of events not stored before."""
    now = time.time() if now is None else now
    target = data["target"]["spec"]
    events = [{**ev, "target": target} for ev in data.get("events", [])]
    with store.transaction():  # one commit: readers never see half a result
        store.upsert_target(target, target_info(data), now)
        store.write_series(target, data.get("series", []))
        defaults: dict[str, Any] = {"upstreams": [], "routes": None, "dependency": None}
        defaults |= {"outages": [], "links": [], "visibility": []}
        store.set_states([(target, key, data.get(key, empty)) for key, empty in defaults.items()], now)
        return store.upsert_events(events, source, now)
