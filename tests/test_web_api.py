"""`transitwatch serve`: the JSON API and pages of a real server over a store built from kp-2017-ttk.

The store is written once by the real CLI; the server is the real command in a subprocess on an
ephemeral port of 127.0.0.1. Every answer is compared with what the store holds.
"""

from __future__ import annotations

import http.client
import json
import os
import selectors
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import schemathesis
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.conftest import REGISTRY, SCENARIOS
from transitwatch.commands.serve import serve
from transitwatch.store import Store
from transitwatch.web import create_app
from transitwatch.web.server import background_server

KP_ARCHIVE = SCENARIOS / "kp-2017-ttk"
START_TIMEOUT_S = 20.0


def build_kp_store(path: Path) -> None:
    """The store as a user gets it: `transitwatch upstreams KP ... --store FILE`."""
    cmd = [sys.executable, "-m", "transitwatch.cli", "upstreams", "KP", "--archive", str(KP_ARCHIVE)]
    cmd += ["--from", "2017-10-01T08:00:00Z", "--to", "2017-10-02T12:00:00Z", "--registry", str(REGISTRY)]
    cmd += ["--store", str(path), "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "new events" in done.stderr


def read_url(proc: subprocess.Popen[str], deadline_s: float) -> str:
    """The base URL the serve command prints once it listens."""
    assert proc.stderr is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + deadline_s
    seen = []
    while (left := deadline - time.monotonic()) > 0:
        if not sel.select(left):
            continue
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if " at http://" in line:
            return line.split(" at ", 1)[1].split("/ ", 1)[0]
    raise AssertionError(f"serve did not start: {''.join(seen)}")


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("web") / "kp.duckdb"
    build_kp_store(path)
    return path


@pytest.fixture(scope="module")
def base_url(store_path: Path) -> Iterator[str]:
    cmd = [
        sys.executable,
        "-m",
        "transitwatch.commands.serve",
        "--store",
        str(store_path),
        "--port",
        "0",
        "-q",
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        url = read_url(proc, START_TIMEOUT_S)
        assert urlsplit(url).hostname == "127.0.0.1"  # loopback unless told otherwise
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10) as c:
        yield c


@pytest.fixture
def store(store_path: Path) -> Iterator[Store]:
    with Store(store_path, read_only=True) as s:
        yield s


def get_json(client: httpx.Client, url: str, params: Any = None) -> Any:
    r = client.get(url, params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    return r.json()


# ---- every endpoint against the store ------------------------------------------------------------


def test_targets_list_the_store(client: httpx.Client, store: Store) -> None:
    body = get_json(client, "/api/targets")
    assert body["count"] == 1
    (kp,) = body["targets"]
    assert kp["target"] == "KP" and kp["country"] == "KP" and kp["asns"] == [131279]
    assert kp["events"] == store.count_events("KP") > 0
    state = store.state("KP", "upstreams")
    assert [(u["asn"], u["share"]) for u in kp["upstreams"]] == [(u["asn"], u["share"]) for u in state]
    assert kp["url"] == "/api/targets/KP" and kp["page"] == "/targets/KP"


@pytest.mark.parametrize(
    ("q", "found"),
    [
        ("KP", True),
        ("4837", True),
        ("as20485 transtelecom", True),
        ("cn", True),
        ("ru kp", True),
        ("ZZ", False),
    ],
)
def test_target_search(client: httpx.Client, q: str, found: bool) -> None:
    body = get_json(client, "/api/targets", {"q": q})
    assert [t["target"] for t in body["targets"]] == (["KP"] if found else [])


def test_target_detail_is_the_state(client: httpx.Client, store: Store) -> None:
    body = get_json(client, "/api/targets/KP")
    assert body["prefixes"] == store.target("KP")["prefixes"]
    assert body["routes"] == store.state("KP", "routes") == 152
    assert body["full_feed_peers"] == 38
    assert body["outages"] == store.state("KP", "outages")
    assert body["dependency"] == store.state("KP", "dependency")
    state = store.state("KP", "upstreams")
    assert [{k: v for k, v in u.items() if k != "since"} for u in body["upstreams"]] == state
    since = {u["asn"]: u["since"] for u in body["upstreams"]}
    # each upstream's current episode: its latest upstream_added
    assert since == {4837: "2017-10-01T12:26:10Z", 20485: "2017-10-01T12:26:10Z"}
    assert body["events"] == store.count_events("KP")
    assert body["links"]["events"] == "/api/targets/KP/events"


def test_series_is_the_stored_series(client: httpx.Client, store: Store) -> None:
    body = get_json(client, "/api/targets/KP/series")
    stored = store.series("KP")
    assert len(body["points"]) == len(stored) == 337
    for got, want in zip(body["points"], stored, strict=True):
        assert got["routes"] == want["routes"] and got["by_upstream"] == want["by_upstream"]
        assert got["visible_prefixes"] == want["visible_prefixes"]
    assert body["points"][0]["time"] == "2017-10-01T08:00:00Z"
    assert body["points"][-1]["time"] == "2017-10-02T12:00:00Z"


def test_series_range(client: httpx.Client) -> None:
    body = get_json(
        client, "/api/targets/KP/series", {"since": "2017-10-01T09:05:00Z", "until": "2017-10-01T09:15:00Z"}
    )
    assert body["since"] == "2017-10-01T09:05:00Z" and body["until"] == "2017-10-01T09:15:00Z"
    times = [p["time"] for p in body["points"]]
    assert times == ["2017-10-01T09:05:00Z", "2017-10-01T09:10:00Z", "2017-10-01T09:15:00Z"]
    # TransTeleCom appeared at 09:07:51: absent from the 09:05 point, carrying routes at 09:10
    assert "20485" not in body["points"][0]["by_upstream"]
    assert body["points"][1]["by_upstream"]["20485"] > 0
    # times that leave years 1 to 9999 once in UTC are the ends of time
    edges = {"since": "0001-01-01T00:00:00+12:00", "until": "9999-12-31T23:59:59-12:00"}
    whole = get_json(client, "/api/targets/KP/series", edges)
    assert whole["since"] == "0001-01-01T00:00:00Z" and whole["until"] == "9999-12-31T23:59:59Z"
    assert len(whole["points"]) == 337
    # a range that ends before it starts is empty
    backwards = {"since": "2017-10-01T10:00:00Z", "until": "2017-10-01T09:00:00Z"}
    assert get_json(client, "/api/targets/KP/series", backwards)["points"] == []
    assert get_json(client, "/api/targets/KP/events", backwards)["total"] == 0
    assert get_json(client, "/api/targets/KP/visibility", backwards)["changes"] == []


def test_visibility_is_the_state(client: httpx.Client, store: Store) -> None:
    body = get_json(client, "/api/targets/KP/visibility")
    assert body["changes"] == store.state("KP", "visibility")
    assert body["outages"] == store.state("KP", "outages")
    assert body["prefixes"] == 4
    part = get_json(
        client,
        "/api/targets/KP/visibility",
        {"since": "2017-10-01T11:00:00Z", "until": "2017-10-01T11:30:00Z"},
    )
    # the value holding at 11:00 comes first, then the changes of the second outage
    assert part["changes"][0] == {"time": "2017-10-01T10:50:21Z", "visible_prefixes": 4}
    assert [o["start"] for o in part["outages"]] == ["2017-10-01T11:12:27Z"]


def test_events_pages_walk_every_event(client: httpx.Client, store: Store) -> None:
    want = store.events("KP", limit=1000)
    assert len(want) > 10
    got: list[dict[str, Any]] = []
    url: str | None = "/api/targets/KP/events?limit=5"
    pages = 0
    while url:
        body = get_json(client, url)
        assert body["total"] == len(want) and body["limit"] == 5 and body["offset"] == 5 * pages
        assert (body["previous"] is None) == (pages == 0)
        got += body["events"]
        url = body["next"]
        pages += 1
    assert pages == -(-len(want) // 5)
    assert got == want
    assert got[0]["id"] == "d7185e15d472f5a0" and got[0]["time"] == "2017-10-01T09:07:51Z"


def test_events_filters(client: httpx.Client, store: Store) -> None:
    body = get_json(client, "/api/targets/KP/events", {"type": "upstream_added", "limit": 3})
    assert body["total"] == store.count_events("KP", types=["upstream_added"]) == 7  # 2 x AS20485, 5 x AS4837
    assert {e["type"] for e in body["events"]} == {"upstream_added"}
    # the filters are carried into the next page's link
    nxt = urlsplit(body["next"])
    assert (
        nxt.path == "/api/targets/KP/events"
        and "type=upstream_added" in nxt.query
        and "offset=3" in nxt.query
    )
    both = get_json(client, "/api/events", [("type", "outage_start"), ("type", "outage_end")])
    assert both["total"] == 8 and both["target"] is None  # four outages, each a start and an end
    assert {e["type"] for e in both["events"]} == {"outage_start", "outage_end"}
    ranged = get_json(
        client, "/api/events", {"since": "2017-10-01T12:00:00Z", "until": "2017-10-01T12:25:32Z"}
    )
    want = store.events(since=1506859200, until=1506860732)
    assert [e["id"] for e in ranged["events"]] == [e["id"] for e in want] and len(want) >= 2
    assert all("2017-10-01T12:00:00Z" <= e["time"] < "2017-10-01T12:25:32Z" for e in ranged["events"])


def test_each_event(client: httpx.Client, store: Store) -> None:
    for ev in store.events("KP", limit=1000):
        assert get_json(client, f"/api/events/{ev['id']}") == ev
    added = get_json(client, "/api/events/d7185e15d472f5a0")
    assert added["first_peer"] == {"address": "80.26.106.5", "asn": 6762, "collector": "rrc00"}


def test_openapi_describes_every_route(client: httpx.Client) -> None:
    spec = get_json(client, "/openapi.json")
    assert set(spec["paths"]) == {
        "/api/targets",
        "/api/targets/{target}",
        "/api/targets/{target}/series",
        "/api/targets/{target}/visibility",
        "/api/targets/{target}/events",
        "/api/events",
        "/api/events/{event_id}",
    }
    limit = next(p for p in spec["paths"]["/api/events"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 1000


def test_concurrent_requests(base_url: str) -> None:
    def fetch(i: int) -> int:
        path = ["/api/targets", "/api/targets/KP/series", "/targets/KP", "/api/events?limit=3"][i % 4]
        return httpx.get(base_url + path, timeout=20).status_code

    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(fetch, range(64))) == {200}


def test_serve_refuses_a_missing_store_and_a_busy_port(store_path: Path, tmp_path: Path) -> None:
    missing = CliRunner().invoke(serve, ["--store", str(tmp_path / "none.duckdb")])
    assert missing.exit_code == 2 and "no store at" in missing.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = CliRunner().invoke(serve, ["--store", str(store_path), "--port", str(port)])
    assert busy.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in busy.output


# ---- pages ---------------------------------------------------------------------------------------


def test_pages(client: httpx.Client) -> None:
    index = client.get("/")
    assert index.status_code == 200 and 'href="/targets/KP"' in index.text
    assert 'name="viewport"' in index.text
    page = client.get("/targets/KP")
    assert (
        page.status_code == 200
        and "TRANSTELECOM" in page.text
        and 'href="/events/d7185e15d472f5a0"' in page.text
    )
    event = client.get("/events/d7185e15d472f5a0")
    assert event.status_code == 200
    assert "80.26.106.5" in event.text and "AS6762" in event.text  # the first peer
    assert "175.45.178.0/24" in event.text
    js = client.get("/vendor/plotly.min.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "plotly.js" in js.text[:200]
    assert client.get("/static/style.css").status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_page_errors_are_pages(client: httpx.Client) -> None:
    missing = client.get("/targets/XX")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "no target" in missing.text
    # the page's range form sends empty fields: no bound
    assert client.get("/targets/KP", params={"since": "", "until": ""}).status_code == 200
    narrowed = client.get("/targets/KP", params={"since": "2017-10-01T12:00:00Z", "until": ""})
    assert narrowed.status_code == 200 and 'data-time="2017-10-01T09:07:51Z"' not in narrowed.text
    bad = client.get("/targets/KP", params={"since": "yesterday"})
    assert bad.status_code == 422 and "since" in bad.text
    assert client.get("/events/0000000000000000").status_code == 404


def test_an_anomaly_page_lists_the_peers_and_paths_that_saw_it(store_path: Path, tmp_path: Path) -> None:
    # an event as the origin detector writes it (no anomaly happens in kp-2017-ttk)
    copy = tmp_path / "anomaly.duckdb"
    shutil.copy(store_path, copy)
    seen = [
        {
            "collector": "rrc00",
            "peer_address": "80.26.106.5",
            "peer_asn": 6762,
            "time": "2017-10-01T14:00:03Z",
        },
        {
            "collector": "route-views2",
            "peer_address": "10.0.0.7",
            "peer_asn": 3356,
            "time": "2017-10-01T14:00:09Z",
        },
    ]
    event = {
        "target": "KP",
        "time": "2017-10-01T14:00:03Z",
        "type": "origin_change",
        "prefix": "175.45.177.0/24",
        "suspect_origin": 64500,
        "suspect_name": "<b>EXAMPLE</b>",
        "expected": [131279],
        "peers": 2,
        "collectors": ["route-views2", "rrc00"],
        "confirmed": "2017-10-01T14:00:09Z",
        "end": None,
        "evidence": [{**p, "as_path": f"{p['peer_asn']} 64500"} for p in seen],
    }
    with Store(copy) as writer:
        (event_id,) = writer.upsert_events([event], source="test", now=0)
    with background_server(create_app(copy)) as url:
        assert httpx.get(f"{url}/api/events/{event_id}", timeout=10).json()["evidence"] == event["evidence"]
        page = httpx.get(f"{url}/events/{event_id}", timeout=10)
    assert page.status_code == 200
    assert "175.45.177.0/24 originated by AS64500" in page.text
    assert "&lt;b&gt;EXAMPLE&lt;/b&gt;" in page.text and "<b>EXAMPLE" not in page.text  # names are escaped
    table = page.text.split('id="peers-seen"', 1)[1].split("</table>", 1)[0]
    for p in seen:
        assert p["collector"] in table and p["peer_address"] in table and p["time"] in table
        assert f"{p['peer_asn']} 64500" in table


# ---- bad input: 4xx with a JSON body, never a 500 ------------------------------------------------

BAD_REQUESTS = [
    ("/api/targets/../../../etc/passwd", 404),
    ("/api/targets/..%2F..%2Fetc%2Fpasswd/series", 404),
    ("/api/targets/KP/../../../../etc/passwd", 404),
    ("/api/events/..%2F..%2Fetc%2Fpasswd", 404),  # decoded "/" leaves no route
    ("/api/targets/KP'%20OR%20'1'='1", 404),
    ("/api/targets/KP%3B%20DROP%20TABLE%20events%3B--/events", 404),
    ("/api/events?type=upstream_added'%20OR%201=1--", 422),
    ("/api/events?since=2017-10-01'%3B%20DELETE%20FROM%20events--", 422),
    ("/api/events/1'%20OR%20'1'='1", 422),
    ("/api/events?limit=99999999999999999999999999999999", 422),
    ("/api/events?offset=-1", 422),
    ("/api/events?offset=1e400", 422),
    ("/api/events?limit=0", 422),
    ("/api/targets/KP/series?since=99999999999999999999999999", 422),
    ("/api/targets/KP/events?since=not-a-time", 422),
    ("/api/targets/KP/events?since=2017-10-01T09:00:00Z&since=1", 422),
    ("/api/events?since=1506848871", 422),  # epoch seconds: times are ISO 8601 here
    ("/api/targets/%FF%FE%00", 422),
    ("/api/targets/%ED%A0%80", 404),
    ("/api/targets/KP%00/series", 422),
    ("/api/targets/" + "A" * 5000, 422),
    ("/api/targets?q=%FF%FE", 200),
    ("/api/targets?q=" + "x" * 500, 422),
    ("/api/events?since=%C0%AF", 422),
    ("/api/events/ffffffffffffffff", 404),
    ("/api/events/FFFF", 422),
    ("/api/nothing-here", 404),
]


@pytest.mark.parametrize(("path", "status"), BAD_REQUESTS)
def test_bad_input_is_a_json_4xx(base_url: str, path: str, status: int) -> None:
    # http.client sends the path byte for byte: no client-side normalisation of "..", "%2F" or "%FF"
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    assert resp.status == status, body
    assert resp.getheader("content-type") == "application/json"
    assert "detail" in json.loads(body) or status == 200


def test_a_writer_holding_the_store_is_a_503(store_path: Path, tmp_path: Path) -> None:
    copy = tmp_path / "busy.duckdb"
    shutil.copy(store_path, copy)
    # a writer in another process, as `replay` would be
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_STORE, str(copy)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with background_server(create_app(copy)) as url:
            r = httpx.get(url + "/api/targets", timeout=10)
            assert r.status_code == 503 and r.headers["retry-after"] == "2"
            assert "busy" in r.json()["detail"]
            page = httpx.get(url + "/targets/KP", timeout=10)
            assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
            assert holder.stdin is not None
            holder.stdin.close()
            assert holder.wait(timeout=10) == 0
            # the writer is gone: the same server reads again
            assert httpx.get(url + "/api/targets", timeout=10).status_code == 200
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_the_server_lets_go_of_the_store_when_idle(store_path: Path, tmp_path: Path) -> None:
    copy = tmp_path / "shared.duckdb"
    shutil.copy(store_path, copy)
    with background_server(create_app(copy)) as url:
        assert httpx.get(url + "/api/targets", timeout=10).status_code == 200
        # a writer can open the store once no request has used it for a moment
        deadline = time.monotonic() + 10
        while True:
            try:
                writer = Store(copy)
                break
            except Exception:
                assert time.monotonic() < deadline, "the server kept the store locked"
        try:
            assert httpx.get(url + "/api/targets", timeout=10).status_code == 503
        finally:
            writer.close()
        assert httpx.get(url + "/api/targets", timeout=10).status_code == 200


HOLD_STORE = (
    "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True); sys.stdin.read()"
)


# ---- property-based: schemathesis against /openapi.json ------------------------------------------
# Its Python API with Hypothesis directly: schemathesis 4's pytest plugin needs a pytest before 9.

# per operation and mode; raise it for a deeper run (TRANSITWATCH_FUZZ_EXAMPLES=1000)
FUZZ_EXAMPLES = int(os.environ.get("TRANSITWATCH_FUZZ_EXAMPLES", "40"))
API_PATHS = [
    "/api/targets",
    "/api/targets/{target}",
    "/api/targets/{target}/series",
    "/api/targets/{target}/visibility",
    "/api/targets/{target}/events",
    "/api/events",
    "/api/events/{event_id}",
]


@pytest.fixture(scope="module")
def api_schema(base_url: str) -> Any:
    return schemathesis.openapi.from_url(base_url + "/openapi.json")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("path", API_PATHS)
def test_api_conforms_to_its_schema(api_schema: Any, path: str, mode: GenerationMode) -> None:
    """No 500, no response outside the schema, valid requests accepted and invalid ones refused."""
    operation = api_schema[path]["GET"]
    calls = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def check(case: Any) -> None:
        response = case.call_and_validate()
        calls.append(response.status_code)

    check()
    assert calls and all(code < 500 for code in calls)
