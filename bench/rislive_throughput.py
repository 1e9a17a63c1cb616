"""RIS Live messages through a watcher's detectors, in one process: the process the rislive benchmark times.

    python bench/rislive_throughput.py prepare ARCHIVE COLLECTORS FROM TO OUT_DIR
    python bench/rislive_throughput.py run CONFIG MESSAGES

``prepare`` turns the update files of the RIS-style collectors of a replay archive (comma-separated
``COLLECTORS``, window [FROM, TO)) into RIS Live messages, with
:func:`transitwatch.sources.rislive.elements_to_ris_messages` (the real ris_message schema; ``host``
``rrcNN.ripe.net``), merged by timestamp across collectors, one JSON text per line in
``OUT_DIR/messages.jsonl``; and writes ``OUT_DIR/origins.json``: the origin ASes of the announcements,
most announced first.

``run`` does what ``transitwatch watch`` does with a stream, minus the websocket: opens the watcher of
CONFIG (``open_watcher``), bootstraps it from the config's archive at ``bootstrap.at`` (``read_archive``,
``Watcher.bootstrap``, the data gap to now, a first flush), then for each line: ``parse_ris_message``,
``row_from_element``; every ``flush_interval`` seconds of wall time (or 20,000 rows) the pending rows are
sorted, ``Watcher.process``-ed and ``Watcher.flush``-ed with the two states ``watch`` writes at each
flush. The messages are read into memory before the clock starts. Prints one JSON object.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any


def prepare(archive: str, collectors: str, start: str, end: str, out_dir: str) -> dict[str, Any]:
    from transitwatch.mrt import MrtReader
    from transitwatch.sources.rislive import elements_to_ris_messages
    from transitwatch.timeutil import parse_time

    t0, t1 = parse_time(start), parse_time(end)
    items: list[tuple[float, int, int, str]] = []
    origins: Counter[int] = Counter()
    elements = 0
    for ci, name in enumerate(collectors.split(",")):
        files = sorted(Path(archive, name).rglob("updates.*"))
        seq = 0
        for f in files:
            for batch in MrtReader(f, collector=name).batches():
                for m in elements_to_ris_messages(batch, host=f"{name}.ripe.net"):
                    data = m["data"]
                    ts = float(data["timestamp"])
                    if not t0 <= ts < t1:
                        continue
                    path = data.get("path") or []
                    if path and isinstance(path[-1], int):
                        n = sum(len(a["prefixes"]) for a in data["announcements"])
                        origins[path[-1]] += n
                    elements += sum(len(a["prefixes"]) for a in data["announcements"]) + len(
                        data["withdrawals"]
                    )
                    items.append((ts, ci, seq, json.dumps(m, separators=(",", ":"))))
                    seq += 1
    items.sort()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "messages.jsonl.tmp"
    with tmp.open("w") as fh:
        for *_k, text in items:
            fh.write(text + "\n")
    tmp.replace(out / "messages.jsonl")
    ranked = sorted(origins.items(), key=lambda kv: (-kv[1], kv[0]))
    info = {"messages": len(items), "elements": elements, "origins": [[a, n] for a, n in ranked]}
    (out / "origins.json").write_text(json.dumps(info))
    return {"messages": len(items), "elements": elements, "origins": len(ranked)}


def _quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else 0.0


def run(config_path: str, messages_path: str) -> dict[str, Any]:
    t_start = time.perf_counter()
    from transitwatch.routing.state import Row
    from transitwatch.sources.rislive import parse_ris_message
    from transitwatch.timeutil import parse_time
    from transitwatch.watch.config import load_config
    from transitwatch.watch.run import FLUSH_ROWS, open_watcher, read_archive
    from transitwatch.watch.watcher import row_from_element

    out: dict[str, Any] = {"import_s": time.perf_counter() - t_start}
    config = load_config(config_path)
    t = time.perf_counter()
    watcher, store, union, dispatcher = open_watcher(config)
    assert config.bootstrap.at is not None
    at = parse_time(config.bootstrap.at)
    rows, _gaps = read_archive(config, config.bootstrap.archive, union, at, at + 1)
    watcher.bootstrap(rows, at)
    now = time.time()
    if now - at > 60:  # as watch(): the blind interval between the bootstrap data and the stream
        watcher.gap(float(at), now, "between the bootstrap data and the stream")
    watcher.flush()
    out["bootstrap_s"] = time.perf_counter() - t
    out["targets"] = len(watcher.targets)
    out["target_prefixes"] = sum(len(wt.engine.targets.prefixes) for wt in watcher.targets if wt.engine)
    out["full_feed_peers"] = len(watcher.targets[0].engine.full_feed) if watcher.targets[0].engine else 0

    with open(messages_path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()

    flushes: list[dict[str, float]] = []
    all_rows: list[Row] = []
    pending: list[Row] = []
    parse_s = 0.0
    n_messages = 0

    def flush_now() -> None:
        nonlocal pending
        a = time.perf_counter()
        pending.sort(key=lambda r: r.time)
        watcher.process(pending)
        b = time.perf_counter()
        # with the two states watch() writes at each flush, as it does
        watcher.flush(
            [
                ("", "watcher", {"flushed_at": time.time(), "data_time": watcher.last_time}),
                ("", "stream_counters", {"messages": n_messages}),
            ]
        )
        c = time.perf_counter()
        flushes.append({"rows": len(pending), "process_s": b - a, "flush_s": c - b})
        all_rows.extend(pending)
        pending = []

    perf, proc = time.perf_counter, time.process_time
    t0, c0 = perf(), proc()
    last_flush = t0
    for text in lines:
        a = perf()
        for el in parse_ris_message(text):
            pending.append(row_from_element(el))
        parse_s += perf() - a
        n_messages += 1
        if pending and (len(pending) >= FLUSH_ROWS or perf() - last_flush >= config.flush_interval):
            flush_now()
            last_flush = perf()
    if pending:
        flush_now()
    loop_s, loop_cpu_s = perf() - t0, proc() - c0

    # untimed: how many rows concerned at least one target, and what the detectors found
    hits = sum(1 for r in all_rows if watcher._targets_for(r))
    events: Counter[str] = Counter()
    kp_events = []
    for wt in watcher.targets:
        assert wt.engine is not None
        evs = [e for e in wt.engine.events() if e["type"] in wt.event_types]
        events.update(e["type"] for e in evs)
        if wt.label == config.targets[0].label:
            kp_events = [
                {k: e.get(k) for k in ("time", "type", "upstream", "confirmed")}
                for e in evs
                if e["type"] in ("upstream_added", "upstream_lost")
            ]
    if dispatcher is not None:
        dispatcher.close()
    store.close()
    fl = [f["process_s"] + f["flush_s"] for f in flushes]
    tenth = max(1, len(flushes) // 10)
    out.update(
        {
            "messages": n_messages,
            "rows": len(all_rows),
            "rows_applied": watcher.rows_applied,
            "rows_for_targets": hits,
            "loop_s": loop_s,
            "loop_cpu_s": loop_cpu_s,
            "parse_s": parse_s,
            "process_s": sum(f["process_s"] for f in flushes),
            "flush_s": sum(f["flush_s"] for f in flushes),
            "flushes": len(flushes),
            "flush_rows_median": _quantile([f["rows"] for f in flushes], 0.5),
            "flush_cost_median_s": _quantile(fl, 0.5),
            "flush_cost_p90_s": _quantile(fl, 0.9),
            "flush_cost_max_s": max(fl, default=0.0),
            "flush_only_median_s": _quantile([f["flush_s"] for f in flushes], 0.5),
            "process_median_s": _quantile([f["process_s"] for f in flushes], 0.5),
            "flush_only_first_tenth_s": _quantile([f["flush_s"] for f in flushes[:tenth]], 0.5),
            "flush_only_last_tenth_s": _quantile([f["flush_s"] for f in flushes[-tenth:]], 0.5),
            "events": dict(events),
            "kp_upstream_events": kp_events,
            "total_s": time.perf_counter() - t_start,
        }
    )
    return out


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        print(json.dumps(prepare(*sys.argv[2:7])))
    elif sys.argv[1] == "run":
        print(json.dumps(run(sys.argv[2], sys.argv[3])))
    else:
        sys.exit(f"unknown command {sys.argv[1]!r}")
