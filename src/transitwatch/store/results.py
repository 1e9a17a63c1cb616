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
    store.upsert_target(target, target_info(data), now)
    store.write_series(target, data.get("series", []))
    store.set_state(target, "upstreams", data.get("upstreams", []), now)
    store.set_state(target, "routes", data.get("routes"), now)
    store.set_state(target, "dependency", data.get("dependency"), now)
    store.set_state(target, "outages", data.get("outages", []), now)
    store.set_state(target, "links", data.get("links", []), now)
    store.set_state(target, "visibility", data.get("visibility", []), now)
    events = [{**ev, "target": target} for ev in data.get("events", [])]
    return store.upsert_events(events, source, now)
