"""API benchmark: submission and status-read throughput and latency at fixed concurrency,
ours (thumbnail-api with PostgreSQL, MinIO and Redis) vs a bare FastAPI app doing the same
I/O-free work, in the same run.

    python -m bench.api_overhead [--concurrency 16] [--requests 3000] [--budget 12] [--quick]

The bare app (this module, `--serve-bare`, run by the same uvicorn in its own process) has
the same routes and does everything ours does except I/O: it parses the multipart upload
with our `read_upload`, our option parsing, magic-number sniff and libvips header probe,
the request fingerprint, and answers with our `JobOut` built from an in-memory record.
What ours adds: the MinIO upload, the PostgreSQL insert and the Redis enqueue (submit), two
PostgreSQL queries (status), plus auth and the metrics middleware. No worker runs while
measuring (jobs stay queued); the status reads target jobs a worker finished beforehand,
so every answer lists three thumbnails.

Cases run interleaved (ours, bare, ours, bare, ... for `--rounds`), each bounded by
`--requests` and `--budget` seconds; the load generator keeps `--concurrency` requests in
flight on keep-alive connections.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
from fastapi import FastAPI, Request, Response

from bench.common import markdown_table, progress, summary, write_results
from bench.load import closed_loop
from bench.stack import CpuMeter, Stack, servers, stack, wait_for
from thumbnail_substrate.process import free_port
from thumbnail_substrate.service_process import ServiceProcess

# --- the bare app -------------------------------------------------------------------------


def create_bare_app() -> FastAPI:
    """FastAPI with our routes' I/O-free work and nothing else (no auth, no middleware).
    FastAPI resolves the handlers' annotations in this module's globals: Request and
    Response are imported at the top for that."""
    from thumbnail_service import imaging
    from thumbnail_service.api.schemas import JobOut
    from thumbnail_service.api.upload import fingerprint, parse_options, read_upload
    from thumbnail_service.jobs import JobRecord, JobStatus, ThumbnailRecord
    from thumbnail_service.settings import Settings

    settings = Settings()
    app = FastAPI()
    now = datetime.now(UTC)
    thumbs = tuple(
        ThumbnailRecord(name, w, h, "jpeg", "image/jpeg", 1000 * w // 64, "0" * 64, f"x/{name}")
        for name, w, h in (("small", 128, 85), ("medium", 512, 341), ("large", 1024, 683))
    )

    def record(job_id: UUID, options: Any, info: Any, size: int, digest: str) -> JobRecord:
        return JobRecord(
            id=job_id,
            status=JobStatus.QUEUED,
            created_at=now,
            updated_at=now,
            started_at=None,
            finished_at=None,
            attempts=0,
            error=None,
            idempotency_key=None,
            request_fingerprint=digest,
            options=options,
            original_key=f"{job_id}/original",
            original_format=info.format.value,
            original_width=info.width,
            original_height=info.height,
            original_bytes=size,
            lease_token=None,
        )

    @app.post("/v1/jobs", status_code=202, response_model=JobOut)
    async def submit(request: Request, response: Response) -> JobOut:
        upload = await read_upload(request, settings)
        options = parse_options(upload.fields, settings)
        if imaging.sniff_format(upload.data) is None:
            raise ValueError("not an image")
        info = await asyncio.to_thread(
            imaging.probe,
            upload.data,
            allowed=settings.allowed_format_set,
            max_pixels=settings.max_pixels,
        )
        job = record(uuid4(), options, info, len(upload.data), fingerprint(upload.data, options))
        response.headers["Location"] = str(request.url_for("get_job", job_id=job.id))
        return JobOut.from_record(job, request)

    template: dict[str, Any] = {}

    @app.get("/v1/jobs/{job_id}", response_model=JobOut, name="get_job")
    async def get_job(job_id: UUID, request: Request) -> JobOut:
        if not template:
            from thumbnail_service.jobs import JobOptions, Size

            options = JobOptions(
                sizes=[Size(name=t.name, width=t.width, height=t.width) for t in thumbs]
            )
            info = imaging.ImageInfo(
                format=imaging.ImageFormat.JPEG,
                width=1732,
                height=1154,
                pages=1,
            )
            template["options"], template["info"] = options, info
        job = record(job_id, template["options"], template["info"], 400_000, "0" * 64)
        finished = JobRecord(
            **{**job.__dict__, "status": JobStatus.SUCCEEDED, "thumbnails": thumbs}
        )
        return JobOut.from_record(finished, request)

    @app.get("/v1/jobs/{job_id}/thumbnails/{name}", name="download_thumbnail")
    async def download_thumbnail(job_id: UUID, name: str) -> Response:
        return Response(b"")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve_bare(port: int) -> None:
    import uvicorn

    # The same uvicorn settings as thumbnail-api (cli.api_main).
    uvicorn.run(
        create_bare_app(),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        proxy_headers=True,
        timeout_graceful_shutdown=20,
    )


def start_bare(s: Stack) -> tuple[ServiceProcess, str]:
    port = free_port()
    proc = ServiceProcess(
        "bare",
        [sys.executable, "-m", "bench.api_overhead", "--serve-bare", str(port)],
        {**s.env, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        s.logdir,
    ).start()
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if not proc.alive:
            raise RuntimeError(f"bare app exited:\n{proc.tail()}")
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200

    wait_for(ready, timeout=30, what="bare FastAPI app")
    return proc, base


# --- measurement --------------------------------------------------------------------------


def small_jpeg(width: int, height: int) -> bytes:
    from bench import corpus

    image = corpus.photo(2.0).resize(width / corpus.photo(2.0).width)
    return bytes(image.crop(0, 0, width, min(height, image.height)).jpegsave_buffer(Q=85))


async def measure(
    base: str,
    headers: dict[str, str],
    case: str,
    payload: bytes,
    job_ids: list[str],
    args: argparse.Namespace,
) -> dict[str, Any]:
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30, limits=limits) as c:

        async def submit(index: int) -> None:
            response = await c.post(
                "/v1/jobs", files={"file": (f"i{index}.jpg", payload, "image/jpeg")}
            )
            if response.status_code != 202:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:80]}")

        async def status(index: int) -> None:
            response = await c.get(f"/v1/jobs/{job_ids[index % len(job_ids)]}")
            if response.status_code != 200 or len(response.json()["thumbnails"]) != 3:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:80]}")

        call = status if case == "status" else submit
        await closed_loop(
            call,
            total=4 * args.concurrency,
            concurrency=args.concurrency,
            budget_seconds=10,
            label="warm-up",
        )
        result = await closed_loop(
            call,
            total=args.requests,
            concurrency=args.concurrency,
            budget_seconds=args.budget,
            label=case,
        )
    return {
        "requests": len(result.ok),
        "errors": dict(result.errors),
        "seconds": result.wall_seconds,
        "rps": result.rate(),
        "latency_ms": result.latency_ms(),
        "samples_ms": [o.latency * 1000 for o in result.ok],
    }


async def prepare_finished_jobs(s: Stack, payload: bytes, count: int) -> list[str]:
    """Submit `count` jobs, let a worker finish them, stop the worker."""
    s.start_worker()
    ids: list[str] = []
    async with httpx.AsyncClient(base_url=s.base_url, headers=s.headers, timeout=30) as c:
        for i in range(count):
            response = await c.post("/v1/jobs", files={"file": (f"p{i}.jpg", payload)})
            response.raise_for_status()
            ids.append(response.json()["id"])
        deadline = time.monotonic() + 120
        pending = list(ids)
        while pending and time.monotonic() < deadline:
            response = await c.get(f"/v1/jobs/{pending[-1]}")
            status = response.json()["status"]
            if status == "failed":
                raise RuntimeError(f"preparation job failed: {response.text[:200]}")
            if status == "succeeded":
                pending.pop()
            else:
                await asyncio.sleep(0.1)
        if pending:
            raise RuntimeError(f"{len(pending)} preparation jobs did not finish in 120 s")
    s.stop_workers()
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--requests", type=int, default=3000, help="max requests per case")
    parser.add_argument("--budget", type=float, default=12, help="max seconds per case")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per case")
    parser.add_argument("--cases", default="small,large,status", help="any of small,large,status")
    parser.add_argument("--quick", action="store_true", help="1 round, 300 requests, 5 s")
    parser.add_argument("--results", default="api", help="bench/results/NAME.json")
    parser.add_argument("--serve-bare", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return
    if args.quick:
        args.rounds, args.requests, args.budget = 1, min(args.requests, 300), min(args.budget, 5)

    from bench import corpus

    uploads = {
        "submit 0.3 MP JPEG": small_jpeg(640, 480),
        "submit 2 MP JPEG": corpus.photo_jpeg(2.0),
    }
    for name, data in uploads.items():
        progress(f"{name}: {len(data) / 1e3:.0f} kB")
    rows: list[dict[str, Any]] = []
    details: dict[str, Any] = {}
    cpu_tables: dict[str, list[dict[str, Any]]] = {}
    with servers() as srv, stack(srv, {"THUMBNAIL_LOG_LEVEL": "WARNING"}) as s:
        job_ids = asyncio.run(prepare_finished_jobs(s, uploads["submit 0.3 MP JPEG"], 50))
        bare, bare_url = start_bare(s)
        try:
            targets = {
                "ours": (s.base_url, s.headers, s.component_roots()),
                "bare": (bare_url, {}, {"bare": bare.pid}),
            }
            cases: list[tuple[str, bytes]] = [*uploads.items(), ("status", b"")]
            wanted = {"small": 0, "large": 1, "status": 2}
            cases = [cases[wanted[c]] for c in args.cases.split(",")]
            for case, payload in cases:
                runs: dict[str, list[dict[str, Any]]] = {"ours": [], "bare": []}
                for rnd in range(args.rounds):
                    for who, (base, headers, roots) in targets.items():
                        progress(f"{case}: {who}, round {rnd + 1}/{args.rounds}")
                        meter = CpuMeter(roots)
                        meter.start()
                        result = asyncio.run(
                            measure(
                                base,
                                headers,
                                "status" if case == "status" else "submit",
                                payload,
                                job_ids,
                                args,
                            )
                        )
                        meter.stop()
                        result["cpu_ms_per_request"] = {
                            k: v / max(result["requests"], 1) * 1000 for k, v in meter.used.items()
                        }
                        result["cpu"] = meter.rows()
                        runs[who].append(result)
                        lat = result["latency_ms"]
                        progress(
                            f"  {result['rps']:.0f} req/s, p50 {lat.get('p50', 0):.1f} ms, "
                            f"p99 {lat.get('p99', 0):.1f} ms, errors {result['errors']}"
                        )
                rows.extend(_rows(case, runs))  # drops the raw samples
                details[case] = runs
                cpu_tables[case] = runs["ours"][-1]["cpu"]
        finally:
            bare.stop()
    columns = [
        "case",
        "server",
        "requests",
        "req/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "ours/bare req/s",
        "ours/bare p50",
        "API CPU ms/req",
    ]
    print(
        f"\nConcurrency {args.concurrency}, {args.rounds} interleaved round(s) per case "
        "(req/s: total over the rounds; latency: all requests of the rounds)\n"
    )
    print(markdown_table(rows, columns))
    for case, table in cpu_tables.items():
        print(f"\nCPU by component, ours, {case} (last round)\n")
        print(markdown_table(table, ["component", "cpu_s", "cores", "share"]))
    write_results(
        args.results,
        rows,
        concurrency=args.concurrency,
        rounds=args.rounds,
        upload_bytes={k: len(v) for k, v in uploads.items()},
        details=details,
    )


def _rows(case: str, runs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for who, results in runs.items():
        requests = sum(r["requests"] for r in results)
        seconds = sum(r["seconds"] for r in results)
        samples = [x for r in results for x in r.pop("samples_ms")]
        lat = summary(samples) if samples else {}
        server_cpu = sum(
            v for r in results for k, v in r["cpu_ms_per_request"].items() if k in ("api", "bare")
        ) / len(results)
        merged[who] = {
            "case": case,
            "server": who,
            "requests": requests,
            "req/s": requests / seconds if seconds else 0.0,
            "p50 ms": lat.get("p50"),
            "p95 ms": lat.get("p95"),
            "p99 ms": lat.get("p99"),
            "API CPU ms/req": server_cpu,
        }
    ours, bare = merged["ours"], merged["bare"]
    ours["ours/bare req/s"] = ours["req/s"] / bare["req/s"] if bare["req/s"] else None
    ours["ours/bare p50"] = ours["p50 ms"] / bare["p50 ms"] if bare.get("p50 ms") else None
    return [ours, bare]


if __name__ == "__main__":
    main()
