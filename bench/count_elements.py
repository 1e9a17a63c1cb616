"""Counts the elements one MRT decoder yields for one file: the process each benchmark run times.

    python bench/count_elements.py TOOL FILE [--budget SECONDS]

TOOL is ``transitwatch`` (MrtReader batches, rows counted), ``mrtparse`` (records decoded, elements
counted as bgpdump -m prints them: RIB entries + announced and withdrawn prefixes + state changes),
``bgpkit`` (pybgpkit-parser, elements yielded) or ``gunzip`` (transitwatch's decompression alone:
``transitwatch.mrt.io.open_chunks``, ISA-L; counts decompressed bytes, no decoding).

With ``--budget`` the tool stops at the first record/element boundary after that many seconds of
reading and reports ``partial: true`` with what it had read by then.

Prints one JSON line: tool, elements, partial, import_s (importing the tool), loop_s (reading),
plus tool-specific extras. The parent measures wall time and peak RSS of the whole process.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

Counter = Callable[[str, float | None], dict[str, Any]]


def count_transitwatch(path: str, budget: float | None) -> dict[str, Any]:
    from transitwatch.mrt import MrtReader

    t0 = time.perf_counter()
    reader = MrtReader(path)
    n = 0
    partial = False
    for batch in reader.batches():
        n += batch.num_rows
        if budget is not None and time.perf_counter() - t0 > budget:
            partial = True
            break
    return {
        "elements": n,
        "partial": partial,
        "issues": len(reader.issues),
        "records": reader.stats.get("records"),
    }


def _mrtparse_elements(data: dict[str, Any]) -> int:
    """Elements of one mrtparse record, counted the way ``bgpdump -m`` prints lines."""
    mtype = next(iter(data["type"]))
    sub = next(iter(data["subtype"]))
    if mtype == 13:  # TABLE_DUMP_V2
        return len(data.get("rib_entries", ()))  # PEER_INDEX_TABLE has none
    if mtype == 12:  # TABLE_DUMP (v1): one entry per record
        return 1
    if mtype in (16, 17):  # BGP4MP, BGP4MP_ET
        if sub in (0, 5):  # STATE_CHANGE, STATE_CHANGE_AS4
            return 1
        msg = data.get("bgp_message")
        if not msg or next(iter(msg.get("type", {0: ""}))) != 2:  # only UPDATEs carry prefixes
            return 0
        n = len(msg.get("withdrawn_routes", ())) + len(msg.get("nlri", ()))
        for attr in msg.get("path_attributes", ()):
            atype = next(iter(attr["type"]))
            if atype == 14:  # MP_REACH_NLRI
                n += len(attr["value"].get("nlri", ()))
            elif atype == 15:  # MP_UNREACH_NLRI
                n += len(attr["value"].get("withdrawn_routes", ()))
        return n
    return 0


def count_mrtparse(path: str, budget: float | None) -> dict[str, Any]:
    import mrtparse

    t0 = time.perf_counter()
    n = records = errors = 0
    partial = False
    for rec in mrtparse.Reader(path):
        records += 1
        if rec.err:
            errors += 1
        else:
            n += _mrtparse_elements(rec.data)
        if budget is not None and time.perf_counter() - t0 > budget:
            partial = True
            break
    return {"elements": n, "partial": partial, "records": records, "errors": errors}


def count_bgpkit(path: str, budget: float | None) -> dict[str, Any]:
    import pybgpkit_parser  # pybgpkit-parser 0.6.2 (the import name is not "bgpkit")

    t0 = time.perf_counter()
    n = 0
    partial = False
    for _elem in pybgpkit_parser.Parser(url=path):
        n += 1
        if budget is not None and not n % 1024 and time.perf_counter() - t0 > budget:
            partial = True
            break
    return {"elements": n, "partial": partial}


def count_gunzip(path: str, budget: float | None) -> dict[str, Any]:
    from transitwatch.mrt.io import open_chunks

    size = 0
    for chunk in open_chunks(path):
        size += len(chunk)
    return {"elements": 0, "partial": False, "decompressed_bytes": size}


COUNTERS: dict[str, Counter] = {
    "transitwatch": count_transitwatch,
    "mrtparse": count_mrtparse,
    "bgpkit": count_bgpkit,
    "gunzip": count_gunzip,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tool", choices=sorted(COUNTERS))
    ap.add_argument("file")
    ap.add_argument("--budget", type=float, default=None, help="stop after this many seconds of reading")
    args = ap.parse_args()
    t0 = time.perf_counter()
    counter = COUNTERS[args.tool]
    # import outside the timed loop so that loop_s is reading only
    mod = {"transitwatch": "transitwatch.mrt", "mrtparse": "mrtparse", "bgpkit": "pybgpkit_parser"}.get(
        args.tool, "transitwatch.mrt.io"
    )
    __import__(mod)
    t1 = time.perf_counter()
    out = counter(args.file, args.budget)
    t2 = time.perf_counter()
    print(json.dumps({"tool": args.tool, **out, "import_s": t1 - t0, "loop_s": t2 - t1}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
