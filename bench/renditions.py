"""Signed renditions over HTTP against thumbor (and imgproxy where it can run here), on the
same original, interleaved round by round in one run:

* first hit: a URL nobody asked for yet (a new width each round), one request at a time:
  ours verifies the signature, reads the job and the original from PostgreSQL and MinIO,
  renders in its render process and stores the result; the peers read a file and render.
* cached hit: one URL asked again and again by `--clients` connections of wrk for
  `--seconds`: ours answers from the API process' memory of recent renditions (MinIO
  behind it); thumbor from its result storage (files); imgproxy has none (it renders every
  time, as it ships). wrk comes from `make bench-peers`.

    .venv/bin/python -m bench.renditions [--quick] [--rounds N] [--budget S]

Every server renders on one process (ours: THUMBNAIL_RENDITION_PROCESSES=1 beside its API
process; thumbor: one process; imgproxy: 1 worker). Output: JPEG q80 fit inside a WxW box.
"""

from __future__ import annotations

import argparse
import re
import secrets
import subprocess
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench import corpus, peers
from bench.common import bounded, markdown_table, progress, summary, write_results
from bench.stack import servers, stack
from thumbnail_service.renditions.signing import SigningPair, signed_path

SOURCE_MEGAPIXELS = 2
QUALITY = 80
FIRST_WIDTH = 300  # round r asks for FIRST_WIDTH + r: a new URL for every server each round
CACHED_WIDTH = 256


def _peer_servers(
    exits: ExitStack, originals: Path, scratch: Path
) -> dict[str, Callable[[int], str]]:
    """Each available peer's URL for a width; one line for each that is not available."""
    urls: dict[str, Callable[[int], str]] = {}
    try:
        base = exits.enter_context(
            peers.run_thumbor(originals, workers=1, result_storage=scratch / "thumbor-results"))
        urls["thumbor"] = lambda w: peers.thumbor_url(base, "photo.jpg", w, w, "jpeg", QUALITY)
    except peers.PeerUnavailable as exc:
        progress(f"thumbor: not available: {exc}")
    try:
        imgproxy = exits.enter_context(peers.run_imgproxy(originals, workers=1))
        urls["imgproxy"] = lambda w: peers.imgproxy_url(imgproxy, "photo.jpg", w, w, "jpeg",
                                                        QUALITY)
    except peers.PeerUnavailable as exc:
        progress(f"imgproxy: not available: {exc}")
    return urls


def _first_hits(urls: dict[str, Callable[[int], str]], rounds: int, budget: float
                ) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {name: [] for name in urls}
    names = list(urls)
    with httpx.Client(timeout=60) as http:
        for index in bounded(rounds, budget):
            for name in names[index % len(names):] + names[:index % len(names)]:  # rotate
                started = time.perf_counter()
                answer = http.get(urls[name](FIRST_WIDTH + index))
                elapsed = time.perf_counter() - started
                if answer.status_code != 200:
                    raise RuntimeError(f"{name}: {answer.status_code} {answer.text[:200]}")
                timings[name].append(elapsed * 1000)
    return timings


def _wrk(url: str, clients: int, seconds: float) -> dict[str, float]:
    """wrk (one thread, `clients` connections): requests/s and latency percentiles, ms."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--latency", url],
        capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"{url}: wrk saw non-2xx answers:\n{out}")
    found = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])}  # type: ignore[index]
    for pct in ("50", "99"):
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)\b", out).groups()  # type: ignore[union-attr]
        found[f"p{pct} ms"] = float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    return found


def _cached_hits(urls: dict[str, Callable[[int], str]], clients: int, seconds: float
                 ) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for name, url_for in urls.items():
        url = url_for(CACHED_WIDTH)
        httpx.get(url, timeout=60).raise_for_status()  # the first hit stores it
        time.sleep(0.5)  # (ours stores it just after answering)
        results[name] = _wrk(url, clients, seconds)
        progress(f"cached {name}: {results[name]['rps']:.0f} requests/s")
    return results


def _ours(running: Any, pair: SigningPair) -> Callable[[int], str]:
    with httpx.Client(base_url=running.base_url, headers=running.headers, timeout=60) as http:
        created = http.post("/v1/jobs", files={"file": ("photo.jpg", corpus.photo_jpeg(
            SOURCE_MEGAPIXELS))}, data={"sizes": "small"})
        created.raise_for_status()
    job_id = created.json()["id"]
    return lambda w: running.base_url + signed_path(pair, f"w:{w},h:{w},f:jpeg,q:{QUALITY}",
                                                     job_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5 rounds, 3 s of cached hits")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--budget", type=float, default=120.0, help="seconds of first hits")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0, help="of cached hits per server")
    args = parser.parse_args()
    rounds, budget, seconds = (5, 20.0, 3.0) if args.quick else (
        args.rounds, args.budget, args.seconds)
    pair = SigningPair(secrets.token_bytes(32), secrets.token_bytes(16))
    with ExitStack() as exits, tempfile.TemporaryDirectory(prefix="bench-renditions-") as tmp:
        scratch = Path(tmp)
        originals = scratch / "originals"
        originals.mkdir()
        (originals / "photo.jpg").write_bytes(corpus.photo_jpeg(SOURCE_MEGAPIXELS))
        srv = exits.enter_context(servers())
        running = exits.enter_context(stack(srv, {
            "THUMBNAIL_RENDITION_KEYS": pair.key.hex(),
            "THUMBNAIL_RENDITION_SALTS": pair.salt.hex(),
            "THUMBNAIL_RENDITION_PROCESSES": "1",
        }))
        urls = {"ours": _ours(running, pair), **_peer_servers(exits, originals, scratch)}
        progress(f"first hits: {list(urls)}, up to {rounds} rounds / {budget:.0f} s")
        first = _first_hits(urls, rounds, budget)
        progress(f"cached hits: {args.clients} clients, {seconds:.0f} s per server")
        cached = _cached_hits(urls, args.clients, seconds)
    rows = _rows(first, cached)
    columns = ["server", "first hits", "first-hit ms (median)", "first-hit p95 ms",
               "first-hit ratio", "cached req/s", "cached p50 ms", "cached ratio"]
    print(markdown_table(rows, columns))
    write_results("renditions", rows, source=f"{SOURCE_MEGAPIXELS} MP JPEG",
                  output=f"JPEG q{QUALITY}", clients=args.clients, cached_seconds=seconds)


def _rows(first: dict[str, list[float]], cached: dict[str, dict[str, float]]
          ) -> list[dict[str, Any]]:
    """Ratios of ours to each peer: first-hit latency (lower is better) and cached
    throughput (ours/peer, higher is better)."""
    ours_first = summary(first["ours"])["median"]
    rows = []
    for name in first:
        stats = summary(first[name])
        row: dict[str, Any] = {
            "server": name, "first hits": len(first[name]),
            "first-hit ms (median)": stats["median"], "first-hit p95 ms": stats["p95"],
            "cached req/s": cached[name]["rps"], "cached p50 ms": cached[name]["p50 ms"],
        }
        if name != "ours":
            row["first-hit ratio"] = ours_first / stats["median"]
            row["cached ratio"] = cached["ours"]["rps"] / cached[name]["rps"]
        rows.append(row)
    return rows


if __name__ == "__main__":
    main()
