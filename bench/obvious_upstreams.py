"""The obvious script: an origin AS's upstreams from ``bgpdump -m`` output of one RIB dump.

    bgpdump -m RIB | python3 bench/obvious_upstreams.py AS37174

What a network engineer would write in a few minutes, with the project's definitions:
- full-feed peers: peers (address, AS) whose table holds at least half as many entries as the
  largest peer table of the dump;
- the routes counted: full-feed peers' entries whose AS path ends with the origin AS;
- the upstream of a route: the first AS left of the run of the origin AS at the end of the path
  (this also collapses the origin's prepending); a path made only of the origin has none.

Prints one JSON object: full-feed peers, routes, and route counts and shares per upstream.
"""

import json
import sys
from collections import Counter


def main() -> None:
    origin = sys.argv[1].upper().removeprefix("AS")
    suffix = " " + origin
    table_size: Counter[str] = Counter()  # "address|AS" -> entries
    routes = []  # (peer, path) of the entries whose path ends with the origin
    for line in sys.stdin:
        # TABLE_DUMP2|time|B|peer address|peer AS|prefix|AS path|origin|...
        f = line.split("|", 7)
        peer = f[3] + "|" + f[4]
        table_size[peer] += 1
        path = f[6]
        if path.endswith(suffix) or path == origin:
            routes.append((peer, path))

    largest = max(table_size.values(), default=0)
    full = {p for p, n in table_size.items() if 2 * n >= largest}
    counts: Counter[str] = Counter()
    no_upstream = 0
    for peer, path in routes:
        if peer not in full:
            continue
        hops = path.split()
        i = len(hops) - 1
        while i >= 0 and hops[i] == origin:
            i -= 1
        if i < 0:
            no_upstream += 1
        else:
            counts[hops[i]] += 1
    total = sum(counts.values()) + no_upstream
    out = {
        "origin": int(origin),
        "peers": len(table_size),
        "full_feed_peers": len(full),
        "routes": total,
        "no_upstream": no_upstream,
        "upstreams": {
            u: {"routes": n, "share": round(n / total, 6)}
            for u, n in sorted(counts.items(), key=lambda kv: (-kv[1], int(kv[0])))
        },
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
