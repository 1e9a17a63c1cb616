"""rislive benchmark: (a) RIS Live messages/s through a 50-target watcher on one core; (b) alert latency.

(a) Throughput. The update files of the two RIS-style collectors of the workers archive
(``bench/specs/bench-workers-kp.json``), first 2 hours of its window, are turned once into RIS Live
messages (JSON text, the ris_message schema, by ``elements_to_ris_messages``; cached in
``bench/data/rislive-...``). ``bench/rislive_throughput.py run`` (pinned to one core) bootstraps a
watcher of 50 targets (KP plus the 49 origin ASes announced most often in those messages; every
detector) from the archive's RIBs and feeds it every message the way ``transitwatch watch`` does:
``parse_ris_message``, ``row_from_element``, ``Watcher.process`` and ``Watcher.flush`` every
``flush_interval`` (the config's default, 1 s) or 20,000 rows. The messages are the collectors' whole
streams, not only those the targets' subscriptions would select: a worst case for parsing and the
journal, and enough traffic to measure. Target: at least 20,000 messages/s.

(b) Latency. A real websocket server (``tests/rislive_server.py``'s ``RisLiveReplayServer``, its
replay loop paced) sends the kp-2017-ttk rrc00 stream (08:00-14:00) that the watcher's subscriptions
select to a real ``transitwatch watch`` process (pinned to one core, flush_interval 0.1 s, a jsonl
alert channel). Which message completes each alert (e.g. the third full-feed peer's route via a new
upstream confirms ``upstream_added``) is found first by feeding the same messages one by one to an
in-process watcher. Ordinary messages are 5 ms apart; each completing message comes after 0.5 s of
quiet and is followed by 1.5 s of quiet. Latency = the time the alert's line appears in the jsonl
file (polled every millisecond) minus the time the server sent the completing message. Run with one
target (KP) and with 50 (KP and 49 origin ASes of the scenario; alerts for KP only). Check: the alerts
that arrive are exactly the expected ones.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import common
import datasets

sys.path.insert(0, str(common.REPO_DIR))  # tests/rislive_server.py, the replay server

from tests.rislive_server import RisLiveReplayServer, subscription_matches

NAME = "rislive"
TITLE = "rislive: RIS Live throughput (50 targets, one core) and message-to-alert latency"

Log = Callable[[str], None]

THROUGHPUT_SCRIPT = Path(__file__).resolve().parent / "rislive_throughput.py"
TRANSITWATCH = Path(sys.executable).parent / "transitwatch"
TARGET_RATE = 20_000  # messages/s on one core
N_TARGETS = 50
STREAM_HOURS = 2.0  # of the workers archive's window, for (a)
QUICK_STREAM_HOURS = 1.0
RIS_COLLECTORS = ("rrc00", "rrc01")
KP_ASNS = {131279}
KP_UPSTREAMS = {4837, 20485}

# (b)
LATENCY_ARCHIVE = datasets.SHARED / "scenarios" / "kp-2017-ttk"
LATENCY_WINDOW = ("2017-10-01T08:00:00Z", "2017-10-01T14:00:00Z")
ALERT_TYPES = ["upstream_added", "upstream_lost", "outage_start", "outage_end"]
LATENCY_FLUSH_INTERVAL = 0.1
GAP_S = 0.005  # between ordinary messages
PRE_S = 0.5  # quiet before a completing message
POST_S = 1.5  # quiet after it
START_DELAY_S = 1.0  # after the subscriptions, before the first message
ALERT_WAIT_S = 20.0  # after the last message, for the last alerts


# --- (a) throughput ------------------------------------------------------------------------------


def _messages(archive: datasets.Archive, hours: float, log: Log) -> tuple[Path, dict[str, Any]]:
    """The RIS Live messages of the archive's RIS collectors, first ``hours`` of the window (cached)."""
    from transitwatch.timeutil import iso, parse_time

    start = archive.start
    end = iso(parse_time(start) + int(hours * 3600))
    folder = datasets.DATA_DIR / f"rislive-{archive.path.name}-{int(hours * 60)}min"
    if not (folder / "origins.json").exists():
        tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        cmd = [
            sys.executable,
            str(THROUGHPUT_SCRIPT),
            "prepare",
            str(archive.path),
            ",".join(RIS_COLLECTORS),
            start,
            end,
            str(tmp),
        ]
        log(f"making RIS Live messages (once): {' '.join(cmd)}")
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise RuntimeError(f"preparing the messages failed:\n{res.stderr[-3000:]}")
        try:
            tmp.rename(folder)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    info = json.loads((folder / "origins.json").read_text())
    info["window"] = (start, end)
    return folder, info


def _throughput_config(folder: Path, archive: datasets.Archive, asns: list[int], run_dir: Path) -> Path:
    cfg = {
        "storage": str(run_dir / "watch.duckdb"),
        "registry": str(datasets.REGISTRY),
        "bootstrap": {"archive": str(archive.path), "collectors": list(RIS_COLLECTORS), "at": archive.start},
        "targets": [{"target": "KP"}] + [{"target": f"AS{a}"} for a in asns],
    }
    path = run_dir / "watch.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@dataclass
class ThroughputRun:
    wall_s: float
    cpu_s: float
    rss_kib: int
    out: dict[str, Any]

    @property
    def rate(self) -> float:
        return float(self.out["messages"]) / float(self.out["loop_s"])

    @property
    def row_rate(self) -> float:
        return float(self.out["rows"]) / float(self.out["loop_s"])


def throughput(opts: common.Options, log: Log) -> tuple[list[str], list[str], list[str]]:
    """(markdown lines, console lines, failures) of part (a)."""
    spec = datasets.SPECS_DIR / "bench-workers-kp-quick.json" if opts.quick else datasets.WORKERS_SPEC
    archive = datasets.scenario_archive(spec, log=log)
    hours = QUICK_STREAM_HOURS if opts.quick else STREAM_HOURS
    folder, info = _messages(archive, hours, log)
    excluded = KP_ASNS | KP_UPSTREAMS
    ranked = [(a, n) for a, n in info["origins"] if a not in excluded]
    asns = [a for a, _n in ranked[: N_TARGETS - 1]]
    log(
        f"   {info['messages']:,} messages ({info['elements']:,} elements), {info['window'][0]} .. "
        f"{info['window'][1]}; targets KP + {len(asns)} origin ASes ({ranked[0][1]} to "
        f"{ranked[len(asns) - 1][1]} announcements each)"
    )
    truth = json.loads((archive.path / "truth.json").read_text())
    ttk_first = truth["links"]["20485"]["first_seen_in_updates"]
    repeat = opts.repeat or (1 if opts.quick else 3)
    runs: list[ThroughputRun] = []
    failures: list[str] = []
    for rnd in range(repeat):
        run_dir = datasets.DATA_DIR / f"tmp-rislive-a-{os.getpid()}"
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        try:
            cfg = _throughput_config(folder, archive, asns, run_dir)
            cmd = [sys.executable, str(THROUGHPUT_SCRIPT), "run", str(cfg), str(folder / "messages.jsonl")]
            r = common.run_measured(cmd, cpu=opts.cpu)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
        if r.returncode != 0:
            failures.append(
                f"(a) run {rnd + 1} failed: exit status {r.returncode}: {r.stderr.strip()[-300:]}"
            )
            log(f"   (a) round {rnd + 1}/{repeat} FAILED: {r.stderr.strip()[-300:]}")
            continue
        out = json.loads(r.stdout.strip().splitlines()[-1])
        tr = ThroughputRun(r.wall_s, r.cpu_s, r.max_rss_kib, out)
        runs.append(tr)
        log(
            f"   (a) round {rnd + 1}/{repeat}: {tr.rate:,.0f} messages/s, {tr.row_rate:,.0f} rows/s "
            f"(loop {out['loop_s']:.2f} s wall, {out['loop_cpu_s']:.2f} s CPU; "
            f"bootstrap {out['bootstrap_s']:.1f} s; "
            f"{out['flushes']} flushes, median {out['flush_cost_median_s'] * 1e3:.0f} ms)"
        )
    for i, tr in enumerate(runs):
        o = tr.out
        if o["rows_applied"] != o["rows"] or o["messages"] != info["messages"]:
            failures.append(
                f"(a) run {i + 1}: {o['messages']} messages / {o['rows']} rows read but "
                f"{o['rows_applied']} applied"
            )
        added = [
            e for e in o["kp_upstream_events"] if e["type"] == "upstream_added" and e["upstream"] == 20485
        ]
        in_window = info["window"][0] <= ttk_first < info["window"][1]
        if in_window and (not added or added[0]["time"] != ttk_first):
            failures.append(
                f"(a) run {i + 1}: KP's upstream_added AS20485 expected at {ttk_first} (truth.json), "
                f"found {added[:1]}"
            )
    if not runs:
        return ["(a) failed: no run"], ["(a) failed"], failures or ["(a) no run"]

    def med(key: str) -> float:
        return common.median(float(tr.out[key]) for tr in runs)

    rate = common.median(tr.rate for tr in runs)
    row_rate = common.median(tr.row_rate for tr in runs)
    o0 = runs[0].out
    header = [
        "messages",
        "rows",
        "rows for a target",
        "runs",
        "loop s (median)",
        "loop CPU s",
        "messages/s",
        "rows/s",
        "bootstrap s",
        "peak RSS",
    ]
    row = [
        f"{o0['messages']:,}",
        f"{o0['rows']:,}",
        f"{o0['rows_for_targets']:,} ({o0['rows_for_targets'] / o0['rows']:.1%})",
        str(len(runs)),
        f"{med('loop_s'):.2f}",
        f"{med('loop_cpu_s'):.2f}",
        f"{rate:,.0f}",
        f"{row_rate:,.0f}",
        f"{med('bootstrap_s'):.1f}",
        f"{max(tr.rss_kib for tr in runs) / 1024:.0f} MiB",
    ]
    loop = med("loop_s")
    split_header = ["step", "seconds (median)", "share of the loop", "per message"]
    parts = [
        ("parse_ris_message + row_from_element", med("parse_s")),
        ("Watcher.process (route state, detectors)", med("process_s")),
        ("Watcher.flush (store: journal, series, events, state; one transaction)", med("flush_s")),
    ]
    other = loop - sum(v for _k, v in parts)
    parts.append(("the rest (loop, sorting the pending rows, timing)", other))
    split = [[k, f"{v:.2f}", f"{v / loop:.0%}", f"{v / o0['messages'] * 1e6:.1f} µs"] for k, v in parts]
    flush_header = [
        "flushes",
        "rows per flush (median)",
        "median",
        "p90",
        "max",
        "store part (median)",
        "store part, first / last tenth",
    ]
    flush_row = [
        f"{int(med('flushes'))}",
        f"{int(med('flush_rows_median')):,}",
        f"{med('flush_cost_median_s') * 1e3:.0f} ms",
        f"{med('flush_cost_p90_s') * 1e3:.0f} ms",
        f"{med('flush_cost_max_s') * 1e3:.0f} ms",
        f"{med('flush_only_median_s') * 1e3:.0f} ms",
        f"{med('flush_only_first_tenth_s') * 1e3:.0f} / {med('flush_only_last_tenth_s') * 1e3:.0f} ms",
    ]
    verdict = (
        f"- (a) {rate:,.0f} messages/s on one core (median of {len(runs)} runs; "
        f"{', '.join(f'{tr.rate:,.0f}' for tr in runs)}) → **{'met' if rate >= TARGET_RATE else 'not met'}** "
        f"(target ≥ {TARGET_RATE:,})"
    )
    events = ", ".join(f"{k} {v}" for k, v in sorted(o0["events"].items())) or "none"
    md = [
        "### (a) Throughput: messages/s through a 50-target watcher, one core",
        "",
        f"- Archive: `{datasets.short_path(archive.path)}` (from `{datasets.short_path(archive.spec)}`); "
        "messages: the RIS collectors "
        f"{', '.join(RIS_COLLECTORS)}, {info['window'][0]} to {info['window'][1]}, whole streams, made once "
        "into "
        f"`{datasets.short_path(folder / 'messages.jsonl')}` "
        f"({(folder / 'messages.jsonl').stat().st_size / 1e6:.0f} MB)",
        f"- Targets: KP and {len(asns)} origin ASes (the most announced in those messages, "
        f"{ranked[0][1]} to {ranked[len(asns) - 1][1]} announced prefixes each; KP's ASes and upstreams left "
        f"out), every detector; {o0['target_prefixes']} target prefixes at the start; "
        f"{o0['full_feed_peers']} "
        "full-feed peers; bootstrap from both RIBs at the window start; flush_interval 1 s (the default)",
        f"- Process: `taskset -c {opts.cpu} python bench/rislive_throughput.py run CONFIG MESSAGES`, "
        f"{repeat} runs; loop = the messages from the first parse to the last flush (bootstrap excluded)",
        "",
        common.markdown_table(header, [row], range(0, 10)),
        "",
        "Where the loop's time goes (medians over the runs):",
        "",
        common.markdown_table(split_header, split, [1, 2, 3]),
        "",
        "Per flush (process + flush; store part = Watcher.flush alone):",
        "",
        common.markdown_table(flush_header, [flush_row], range(0, 7)),
        "",
        f"Events found (first run, all targets): {events}.",
        "",
        verdict,
    ]
    console = [
        "(a) throughput",
        common.text_table(header, [row], range(0, 10)),
        common.text_table(split_header, split, [1, 2, 3]),
        common.text_table(flush_header, [flush_row], range(0, 7)),
        verdict,
    ]
    return md, console, failures


# --- (b) latency ---------------------------------------------------------------------------------


class PacedReplayServer(RisLiveReplayServer):
    """The replay server with a paced replay loop: before message i it waits ``pauses[i]`` seconds and
    after sending it records ``time.perf_counter()`` in ``sent_at[i]``. The messages are already the
    ones the subscriptions select (filtered beforehand), so the loop sends them all, to connection 1."""

    def __init__(self, texts: list[str], pauses: list[float], expect_subscriptions: int) -> None:
        super().__init__([], expect_subscriptions=expect_subscriptions)
        self.texts = texts
        self.pauses = pauses
        self.sent_at: list[float | None] = [None] * len(texts)
        self.finished = threading.Event()

    async def _send_replay(self, ws: Any, conn: int, subs: list[dict[str, Any]]) -> None:
        if conn == 1:
            await asyncio.sleep(START_DELAY_S)
            for i, text in enumerate(self.texts):
                if self.pauses[i] > 0:
                    await asyncio.sleep(self.pauses[i])
                await ws.send(text)
                self.sent_at[i] = time.perf_counter()
            self.finished.set()
        await ws.wait_closed()


class AlertTail(threading.Thread):
    """Follows the jsonl alert file; records when each (event_id, phase) line first appears."""

    def __init__(self, path: Path) -> None:
        super().__init__(name="alert-tail", daemon=True)
        self.path = path
        self.seen: dict[tuple[str, str], float] = {}
        self.lines: list[dict[str, Any]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        fh = None
        buf = b""
        while not self.stop.is_set():
            if fh is None and self.path.exists():
                fh = self.path.open("rb")
            if fh is not None:
                chunk = fh.read()
                if chunk:
                    now = time.perf_counter()
                    buf += chunk
                    *complete, buf = buf.split(b"\n")
                    for line in complete:
                        if line.strip():
                            d = json.loads(line)
                            self.lines.append(d)
                            self.seen.setdefault((d["event_id"], d["phase"]), now)
            time.sleep(0.001)
        if fh is not None:
            fh.close()


def _latency_messages() -> list[dict[str, Any]]:
    from transitwatch.mrt import MrtReader
    from transitwatch.sources.rislive import elements_to_ris_messages
    from transitwatch.timeutil import parse_time

    t0, t1 = (parse_time(t) for t in LATENCY_WINDOW)
    out: list[dict[str, Any]] = []
    for f in sorted((LATENCY_ARCHIVE / "rrc00").rglob("updates.*.gz")):
        for batch in MrtReader(f, collector="rrc00").batches():
            out.extend(elements_to_ris_messages(batch, host="rrc00.ripe.net"))
    return [m for m in out if t0 <= float(m["data"]["timestamp"]) < t1]


def _latency_extra_targets(n: int) -> list[int]:
    """The n origin ASes with the most prefixes in the scenario's rrc00 RIB at the window start (not KP's)."""
    import pyarrow as pa

    from transitwatch.mrt import MrtReader

    rib = next((LATENCY_ARCHIVE / "rrc00").rglob("bview.20171001.0800.gz"))
    pairs: set[tuple[int, str]] = set()
    for b in MrtReader(rib).batches():
        g = pa.table({"o": b.column("origin_asn"), "p": b.column("prefix").dictionary_decode()})
        g = g.group_by(["o", "p"]).aggregate([])
        pairs.update(zip(g.column("o").to_pylist(), g.column("p").to_pylist(), strict=True))
    counts = Counter(o for o, _p in pairs if o is not None and o not in KP_ASNS | KP_UPSTREAMS)
    return [a for a, _n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def _latency_config(path: Path, run_dir: Path, url: str, extra: list[int]) -> Path:
    cfg = {
        "storage": str(run_dir / "watch.duckdb"),
        "registry": str(datasets.REGISTRY),
        "flush_interval": LATENCY_FLUSH_INTERVAL,
        "bootstrap": {"archive": str(LATENCY_ARCHIVE), "collectors": ["rrc00"], "at": LATENCY_WINDOW[0]},
        "stream": {"url": url, "stale_after": 180},
        "alerts": {
            "jsonl": {
                "type": "jsonl",
                "path": str(run_dir / "alerts.jsonl"),
                "rate_limit": 1000,
                "mute": 0,
                "types": ALERT_TYPES,
            }
        },
        "targets": [{"target": "KP", "alerts": ["jsonl"]}] + [{"target": f"AS{a}"} for a in extra],
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@dataclass
class Plan:
    """The messages the watcher's subscriptions select, and which message completes each alert."""

    subscriptions: int
    messages: list[dict[str, Any]]
    completes: dict[tuple[str, str], int]  # (event_id, phase) -> index of the completing message
    describe: dict[tuple[str, str], str]


def _plan(cfg_path: Path, messages: list[dict[str, Any]]) -> Plan:
    """Feeds the messages one by one to an in-process watcher (same config, its own store)."""
    from transitwatch.alerts.messages import phases
    from transitwatch.sources.rislive import parse_ris_message
    from transitwatch.store import event_id
    from transitwatch.timeutil import parse_time
    from transitwatch.watch.config import load_config
    from transitwatch.watch.run import open_watcher, read_archive, stream_subscriptions
    from transitwatch.watch.watcher import row_from_element

    config = load_config(cfg_path)
    config = config.model_copy(update={"storage": str(cfg_path.parent / "plan.duckdb")})
    watcher, store, union, _d = open_watcher(config, on_events=lambda _e, _now: None)
    try:
        assert config.bootstrap.at is not None
        at = parse_time(config.bootstrap.at)
        rows, _gaps = read_archive(config, config.bootstrap.archive, union, at, at + 1)
        watcher.bootstrap(rows, at)
        subs = stream_subscriptions(watcher, union)
        selected = [m for m in messages if any(subscription_matches(s, m["data"]) for s in subs)]
        completes: dict[tuple[str, str], int] = {}
        describe: dict[tuple[str, str], str] = {}
        alerting = [wt for wt in watcher.targets if wt.config.alerts]
        for i, m in enumerate(selected):
            batch = sorted((row_from_element(e) for e in parse_ris_message(m)), key=lambda r: r.time)
            watcher.process(batch)
            for wt in alerting:
                assert wt.engine is not None and watcher.last_time is not None
                wt.engine.advance(watcher.last_time)
                for e in wt.engine.events(watcher.names):
                    if e["type"] not in wt.event_types or e["type"] not in ALERT_TYPES:
                        continue
                    e["target"] = wt.label
                    for ph in phases(e):
                        key = (event_id(e), ph)
                        if key not in completes:
                            completes[key] = i
                            who = f"AS{e['upstream']}" if e.get("upstream") else ""
                            describe[key] = " ".join(x for x in (e["type"], who, e["time"]) if x)
        return Plan(len(subs), selected, completes, describe)
    finally:
        store.close()


@dataclass
class LatencyRun:
    latencies: dict[tuple[str, str], float] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    error: str | None = None
    watcher_wall_s: float = 0.0  # the watcher process, start to exit
    watcher_cpu_s: float = 0.0
    flushes: int = 0  # "flushed:" lines in its log


def _latency_run(plan: Plan, extra: list[int], cpu: int, run_dir: Path) -> LatencyRun:
    texts = [json.dumps(m) for m in plan.messages]
    completing = set(plan.completes.values())
    pauses = [GAP_S] * len(texts)
    for i in completing:
        pauses[i] = max(pauses[i], PRE_S)
        if i + 1 < len(pauses):
            pauses[i + 1] = max(pauses[i + 1], POST_S)
    server = PacedReplayServer(texts, pauses, expect_subscriptions=plan.subscriptions)
    server.start()
    tail = AlertTail(run_dir / "alerts.jsonl")
    tail.start()
    res = LatencyRun()
    proc: subprocess.Popen[bytes] | None = None
    t_spawn = time.perf_counter()
    log_path = run_dir / "watch.log"
    try:
        cfg = _latency_config(run_dir / "watch.yml", run_dir, server.url, extra)
        cmd = ["taskset", "-c", str(cpu), str(TRANSITWATCH), "watch", "--config", str(cfg), "-v"]
        t_spawn = time.perf_counter()
        with log_path.open("wb") as logf:
            proc = subprocess.Popen(
                cmd,
                stdout=logf,
                stderr=logf,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        if not server.finished.wait(300 + sum(pauses)):
            res.error = f"the replay did not finish; watcher log: {log_path.read_text()[-500:]}"
            return res
        deadline = time.perf_counter() + ALERT_WAIT_S
        want = set(plan.completes)
        while time.perf_counter() < deadline and not want <= set(tail.seen):
            time.sleep(0.05)
        time.sleep(0.5)  # anything unexpected that follows
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            killer = threading.Timer(60, proc.kill)
            killer.start()
            try:
                _pid, status, ru = os.wait4(proc.pid, 0)  # its rusage: CPU time
            finally:
                killer.cancel()
            proc.returncode = os.waitstatus_to_exitcode(status)
            res.watcher_wall_s = time.perf_counter() - t_spawn
            res.watcher_cpu_s = ru.ru_utime + ru.ru_stime
            res.flushes = log_path.read_text(errors="replace").count("flushed:")
        tail.stop.set()
        tail.join(5)
        server.stop()
    for key, i in plan.completes.items():
        sent = server.sent_at[i]
        if key in tail.seen and sent is not None:
            res.latencies[key] = tail.seen[key] - sent
        else:
            res.missing.append(plan.describe[key])
    res.unexpected = [f"{k[1]} of event {k[0]}" for k in tail.seen if k not in plan.completes]
    return res


def latency(opts: common.Options, log: Log) -> tuple[list[str], list[str], list[str]]:
    messages = _latency_messages()
    extra = _latency_extra_targets(N_TARGETS - 1)
    repeat = opts.repeat or (1 if opts.quick else 3)
    variants = [("1 target (KP)", [])] if opts.quick else [("1 target (KP)", []), ("50 targets", extra)]
    failures: list[str] = []
    rows: list[list[str]] = []
    per_type: dict[str, list[float]] = {}
    plans: dict[str, Plan] = {}
    verdict_lines: list[str] = []
    for label, ex in variants:
        run_dir = datasets.DATA_DIR / f"tmp-rislive-b-{os.getpid()}"
        samples: list[float] = []
        done: list[LatencyRun] = []
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        try:
            plan = _plan(_latency_config(run_dir / "plan.yml", run_dir, "ws://127.0.0.1:1/", ex), messages)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
        plans[label] = plan
        log(
            f"   (b) {label}: {len(plan.messages)} messages selected by {plan.subscriptions} subscriptions, "
            f"{len(plan.completes)} alerts expected"
        )
        for rnd in range(repeat):
            shutil.rmtree(run_dir, ignore_errors=True)
            run_dir.mkdir(parents=True)
            # the bench process (server, file tail) on the other core than the watcher
            other = {c for c in os.sched_getaffinity(0) if c != opts.cpu}
            saved = os.sched_getaffinity(0)
            if other:
                os.sched_setaffinity(0, other)
            try:
                r = _latency_run(plan, ex, opts.cpu, run_dir)
            finally:
                os.sched_setaffinity(0, saved)
                log_text = (run_dir / "watch.log").read_text() if (run_dir / "watch.log").exists() else ""
                shutil.rmtree(run_dir, ignore_errors=True)
            done.append(r)
            if r.error:
                failures.append(f"(b) {label}, run {rnd + 1}: {r.error}")
            if r.missing:
                failures.append(
                    f"(b) {label}, run {rnd + 1}: alerts missing: {r.missing}; log: {log_text[-300:]}"
                )
            if r.unexpected:
                failures.append(f"(b) {label}, run {rnd + 1}: unexpected alerts: {r.unexpected}")
            lat = sorted(r.latencies.values())
            samples += lat
            for key, v in r.latencies.items():
                per_type.setdefault(f"{label}: {plan.describe[key].split()[0]}", []).append(v)
            if lat:
                log(
                    f"   (b) {label}, run {rnd + 1}/{repeat}: {len(lat)} alerts, latency median "
                    f"{common.median(lat) * 1e3:.0f} ms, max {lat[-1] * 1e3:.0f} ms"
                )
        if samples:
            s = sorted(samples)
            rows.append(
                [
                    label,
                    str(repeat),
                    str(len(s)),
                    f"{s[0] * 1e3:.0f}",
                    f"{common.median(s) * 1e3:.0f}",
                    f"{s[min(len(s) - 1, int(0.9 * len(s)))] * 1e3:.0f}",
                    f"{s[-1] * 1e3:.0f}",
                    f"{common.median(r.watcher_cpu_s for r in done):.1f} / "
                    f"{common.median(r.watcher_wall_s for r in done):.1f}",
                    f"{common.median(r.flushes for r in done):.0f}",
                ]
            )
            verdict_lines.append(
                f"- (b) {label}: message-to-alert latency median {common.median(s) * 1e3:.0f} ms, max "
                f"{s[-1] * 1e3:.0f} ms over {len(s)} alerts ({repeat} runs; flush_interval "
                f"{LATENCY_FLUSH_INTERVAL} s)"
            )
    header = [
        "watcher",
        "runs",
        "alerts",
        "min ms",
        "median ms",
        "p90 ms",
        "max ms",
        "watcher CPU s / wall s",
        "flushes",
    ]
    type_rows = [
        [k, str(len(v)), f"{common.median(v) * 1e3:.0f}", f"{max(v) * 1e3:.0f}"]
        for k, v in sorted(per_type.items())
    ]
    first = next(iter(plans.values()))
    kinds = Counter(d.split()[0] for d in first.describe.values())
    ttk = sorted(d.split()[-1] for d in first.describe.values() if d.startswith("upstream_added AS20485"))
    alerts_desc = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
    if ttk:
        alerts_desc += f"; the first: upstream_added AS20485 at {ttk[0]}"
    md = [
        "### (b) Latency: from the server sending the completing message to the alert line in the jsonl file",
        "",
        f"- Stream: kp-2017-ttk rrc00 updates {LATENCY_WINDOW[0]} to {LATENCY_WINDOW[1]} as RIS Live "
        "messages, "
        "those the watcher's subscriptions select (the server filters as RIS Live does; here beforehand), "
        "sent by `RisLiveReplayServer` (tests/rislive_server.py) with its replay loop paced: "
        f"{GAP_S * 1e3:.0f} ms "
        f"between messages, {PRE_S} s of quiet before and {POST_S} s after each completing message",
        f"- Watcher: `taskset -c {opts.cpu} transitwatch watch --config watch.yml -v` (bootstrap: the rrc00 "
        "RIB at "
        f"{LATENCY_WINDOW[0]}; flush_interval {LATENCY_FLUSH_INTERVAL} s; jsonl channel, fsync on, for "
        f"{', '.join(ALERT_TYPES)}; alerts for KP only); the server and the file tail run in the benchmark "
        "process on the other core",
        f"- Alerts expected per run (found by feeding the messages one by one to an in-process watcher): "
        f"{', '.join(f'{k}: {len(p.completes)}' for k, p in plans.items())} ({alerts_desc})",
        "",
        common.markdown_table(header, rows, range(1, 9)),
        "",
        "Latency in ms (all runs together). Watcher CPU s / wall s: the `watch` process from spawn to exit "
        "(bootstrap, replay, the quiet periods, shutdown; medians over the runs); flushes: its `flushed:` "
        "log lines (a flush every flush_interval, busy or idle).",
        "",
        "By event type:",
        "",
        common.markdown_table(["watcher: event type", "alerts", "median ms", "max ms"], type_rows, [1, 2, 3]),
        "",
        *verdict_lines,
    ]
    console = [
        "(b) latency",
        common.text_table(header, rows, range(1, 9)),
        common.text_table(["event type", "alerts", "median ms", "max ms"], type_rows, [1, 2, 3]),
        *verdict_lines,
    ]
    return md, console, failures


# --- the section ---------------------------------------------------------------------------------


def run(opts: common.Options, log: Log = print) -> common.Section:
    started = common.now_utc()
    commit = common.git_commit()
    load = common.LoadMeter()
    load.start()
    md_a, con_a, fail_a = throughput(opts, log)
    md_b, con_b, fail_b = latency(opts, log)
    load.stop()
    failures = fail_a + fail_b
    console = [*con_a, "", *con_b]
    md = [
        f"Run {started} with `{opts.command}`{' (quick)' if opts.quick else ''}.",
        "",
        *common.machine_lines(common.package_versions("pyarrow", "duckdb", "websockets"), commit=commit),
        f"- Machine load: {load.describe()}",
        "",
        *md_a,
        "",
        *md_b,
        "",
        "### Targets (reported, not asserted)",
        "",
        *[ln for ln in md_a if ln.startswith("- (a)")],
        *[ln for ln in md_b if ln.startswith("- (b)")],
    ]
    return common.section(NAME, TITLE, opts, console, md, failures=failures, load=load)
