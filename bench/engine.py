"""Engine benchmark: our render() against Pillow, thumbor, vipsthumbnail and imgproxy, one core.

    .venv/bin/python -m bench.engine [--quick] [--rounds N] [--budget S] [--no-memory]

Every case (input x job) runs each implementation interleaved round by round, bounded by
--rounds and --budget seconds (bench.common.bounded). The whole run is pinned to one CPU
(sched_setaffinity, inherited by every child) with libvips at one thread. Reported: input
images per second per core (1 / median), median and p95 ms, time relative to the fastest
peer, output KiB, PSNR of the output against a Lanczos resize of the uncompressed source,
and peak RSS measured in a fresh child per implementation and input (see `measure_memory`).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import corpus, peers
from bench.common import bounded, markdown_table, peak_rss_mib, progress, summary, write_results

QUALITY = 80
BASELINE = "ours@baseline"  # --baseline: our engine from another tree, not a peer
CLEARLY_FASTER = 0.8  # "clearly faster": at most 80 % of the fastest peer's time


@dataclass(frozen=True)
class Input:
    name: str
    megapixels: float
    make: Callable[[], bytes]
    suffix: str


@dataclass(frozen=True)
class Job:
    name: str
    boxes: tuple[int, ...]
    fmt: str


INPUTS = (
    Input("JPEG 2MP", 2, lambda: corpus.photo_jpeg(2), ".jpg"),
    Input("JPEG 12MP", 12, lambda: corpus.photo_jpeg(12), ".jpg"),
    Input("JPEG 12MP progressive", 12, lambda: corpus.photo_jpeg(12, progressive=True), ".jpg"),
    Input("PNG 2MP", 2, lambda: corpus.photo_png(2), ".png"),
    Input("WebP 2MP", 2, lambda: corpus.photo_webp(2), ".webp"),
    Input("PNG 12MP (large)", 12, lambda: corpus.photo_png(12), ".png"),
)
JOBS = (
    Job("JPEG 256", (256,), "jpeg"),
    Job("JPEG 1024", (1024,), "jpeg"),
    Job("WebP 256", (256,), "webp"),
    Job("WebP 1024", (1024,), "webp"),
    Job("AVIF 256", (256,), "avif"),
    Job("3 sizes JPEG", (128, 512, 1024), "jpeg"),
)
MULTI = JOBS[-1]


# --- implementations ---------------------------------------------------------------------
Run = Callable[[bytes, tuple[int, ...], str, int], tuple["Cost", list[bytes]]]
Thumbs = Callable[[bytes, tuple[int, ...], str, int], list[bytes]]


@dataclass(frozen=True)
class Cost:
    """Per input image: wall-clock and CPU seconds (all threads of the process doing it)."""

    wall: float
    cpu: float


@dataclass
class Impl:
    """run() -> (cost per input image, outputs); `unavailable` holds the reason if any."""

    run: Run = field(default=lambda *_: (Cost(math.nan, math.nan), []))
    unavailable: str | None = None
    peer: bool = True


def timed(thumbs: Thumbs) -> Run:
    def run(
        data: bytes, boxes: tuple[int, ...], fmt: str, quality: int
    ) -> tuple[Cost, list[bytes]]:
        wall, cpu = time.perf_counter(), time.process_time()
        out = thumbs(data, boxes, fmt, quality)
        return Cost(time.perf_counter() - wall, time.process_time() - cpu), out

    return run


def ours(data: bytes, boxes: tuple[int, ...], fmt: str, quality: int) -> list[bytes]:
    from thumbnail_service import imaging

    return render_with(imaging, data, boxes, fmt, quality)


def render_with(
    imaging: Any, data: bytes, boxes: tuple[int, ...], fmt: str, quality: int
) -> list[bytes]:
    sizes = tuple(imaging.SizeSpec(f"s{box}", box, box) for box in boxes)
    options = imaging.RenderOptions(sizes, format=imaging.OutputFormat(fmt), quality=quality)
    thumbs = imaging.render(
        data, options, allowed=frozenset(imaging.ImageFormat), max_pixels=10**9, timeout_seconds=300
    )
    return [t.data for t in thumbs]


def baseline_impl(package: Path) -> Thumbs:
    """Another copy of thumbnail_service/imaging (e.g. from an older commit), imported under
    its own name, so before/after tuning is timed interleaved in one run (--baseline)."""
    import importlib.util

    name = "imaging_baseline"
    spec = importlib.util.spec_from_file_location(
        name, package / "__init__.py", submodule_search_locations=[str(package)]
    )
    if spec is None or spec.loader is None:
        raise SystemExit(f"--baseline: no package at {package}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return functools.partial(render_with, module)


@functools.cache
def thumbor_engine() -> peers.ThumborEngine | str:
    try:
        return peers.ThumborEngine()
    except ImportError as exc:
        return f"thumbor is not installed ({exc}): run `make bench-peers`"


def thumbs_by_name(name: str) -> Thumbs:
    if name == "ours":
        return ours
    if name == "pillow":
        return peers.pillow_thumbnails
    if name == "pillow-once":
        return peers.pillow_once
    engine = thumbor_engine()
    if isinstance(engine, str):
        raise peers.PeerUnavailable(engine)
    return engine.thumbnails


def in_process_impls(multi: bool, baseline: Thumbs | None = None) -> dict[str, Impl]:
    names = ["ours", "pillow", "thumbor"] + (["pillow-once"] if multi else [])
    impls = {} if baseline is None else {BASELINE: Impl(timed(baseline), peer=False)}
    for name in names:
        try:
            impls[name] = Impl(timed(thumbs_by_name(name)), peer=name != "ours")
        except peers.PeerUnavailable as exc:
            impls[name] = Impl(unavailable=str(exc))
    return impls


class VipsBatch:
    """vipsthumbnail over N hard links to one input file: one process, start-up amortised."""

    TARGET_SECONDS = 0.3  # per batch; N is calibrated on the warm-up batch of each case
    MAX_FILES = 40

    def __init__(self, source: Path, folder: Path) -> None:
        self.source, self.folder = source, folder
        (folder / "out").mkdir(parents=True, exist_ok=True)
        self.files: list[Path] = []

    def _links(self, count: int) -> list[Path]:
        while len(self.files) < count:
            link = self.folder / f"f{len(self.files):03d}{self.source.suffix}"
            if not link.exists():
                os.link(self.source, link)  # same inode: page-cached once, no copies
            self.files.append(link)
        return self.files[:count]

    def impl(self) -> Impl:
        if peers.vipsthumbnail_binary() is None:
            return Impl(unavailable="vipsthumbnail is not installed: run `make bench-peers`")
        count = [2]  # per case: calibrated by the first (warm-up) batch

        def run(data: bytes, boxes: tuple[int, ...], fmt: str, q: int) -> tuple[Cost, list[bytes]]:
            files = self._links(count[0])
            out = self.folder / "out"
            wall, cpu = peers.vipsthumbnail_batch(files, out, boxes, fmt, q)
            count[0] = max(2, min(self.MAX_FILES, int(self.TARGET_SECONDS * len(files) / wall)))
            ext = "jpg" if fmt == "jpeg" else fmt
            made = [(out / f"{files[0].stem}_{box}.{ext}").read_bytes() for box in boxes]
            return Cost(wall / len(files), cpu / len(files)), made

        return Impl(run)


class Imgproxy:
    """imgproxy over loopback HTTP, one worker, GOMAXPROCS=1 (started once for the run)."""

    def __init__(self, base: str, root: Path) -> None:
        self.base, self.root = base, root

    def get(self, filename: str, box: int, fmt: str, quality: int) -> bytes:
        url = peers.imgproxy_url(self.base, filename, box, box, fmt, quality)
        with urllib.request.urlopen(url, timeout=120) as response:
            return bytes(response.read())

    def impl(self, path: Path) -> Impl:
        def thumbs(data: bytes, boxes: tuple[int, ...], fmt: str, quality: int) -> list[bytes]:
            return [self.get(path.name, box, fmt, quality) for box in boxes]

        return Impl(timed(thumbs))

    def peak_rss_mib(self) -> float | None:
        """VmHWM of the server process (found by its executable), for the whole run."""
        binary = peers.imgproxy_binary()
        for exe in Path("/proc").glob("[0-9]*/exe"):
            with contextlib.suppress(OSError):
                if binary is not None and exe.resolve() == binary.resolve():
                    for line in (exe.parent / "status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            return int(line.split()[1]) / 1024
        return None

    def overhead_ms(self) -> float:
        """Median time for a 16x16 JPEG to 8 px: the HTTP + request handling cost."""
        import pyvips

        tiny = self.root / "tiny.jpg"
        tiny.write_bytes(pyvips.Image.black(16, 16, bands=3).jpegsave_buffer())
        samples = []
        for _ in bounded(50, 3.0):
            started = time.perf_counter()
            self.get(tiny.name, 8, "jpeg", 80)
            samples.append(time.perf_counter() - started)
        return summary(samples)["median"] * 1e3


@contextlib.contextmanager
def imgproxy_server(root: Path) -> Iterator[Imgproxy | str]:
    """The running server, or the one-line reason it is not available."""
    if peers.imgproxy_binary() is None:
        yield peers.imgproxy_unavailable_reason()
        return
    with peers.run_imgproxy(root, workers=1) as base:
        yield Imgproxy(base, root)


def vipsthumbnail_startup_ms() -> float:
    """Process start-up + one 16x16 thumbnail (what a per-image invocation would add)."""
    import pyvips

    with tempfile.TemporaryDirectory() as tmp:
        tiny = Path(tmp) / "tiny.jpg"
        tiny.write_bytes(pyvips.Image.black(16, 16, bands=3).jpegsave_buffer())
        samples = []
        for _ in bounded(10, 3.0):
            samples.append(peers.vipsthumbnail_batch([tiny], Path(tmp), (8,), "jpeg", 80)[0])
    return summary(samples)["median"] * 1e3


# --- measurement ---------------------------------------------------------------------------
def time_case(
    data: bytes,
    job: Job,
    impls: dict[str, Impl],
    rounds: int,
    budget: float,
) -> tuple[dict[str, list[Cost]], dict[str, list[bytes]]]:
    """Warm up each implementation once, then interleave them (rotating the order)."""
    live = [name for name, impl in impls.items() if impl.unavailable is None]
    outputs = {name: impls[name].run(data, job.boxes, job.fmt, QUALITY)[1] for name in live}
    samples: dict[str, list[Cost]] = {name: [] for name in live}
    for index in bounded(rounds, budget):
        shift = index % max(1, len(live))
        for name in live[shift:] + live[:shift]:
            cost, _ = impls[name].run(data, job.boxes, job.fmt, QUALITY)
            samples[name].append(cost)
    return samples, outputs


def best_peer(medians: dict[str, float], impls: dict[str, Impl]) -> str | None:
    timed_peers = {k: v for k, v in medians.items() if impls[k].peer}
    return min(timed_peers, key=timed_peers.__getitem__) if timed_peers else None


@functools.cache
def reference(megapixels: float, width: int, height: int) -> Any:
    """Lanczos-3 resize of the uncompressed source: the quality yardstick for every output."""
    source = corpus.photo(megapixels)
    image = source.resize(width / source.width, vscale=height / source.height, kernel="lanczos3")
    return image.copy_memory()


def psnr(megapixels: float, encoded: bytes) -> float:
    import pyvips

    out = pyvips.Image.new_from_buffer(encoded, "")[0:3].cast("float")
    ref = reference(megapixels, out.width, out.height)
    mse = float(((out - ref.cast("float")) ** 2).avg())
    return 99.0 if mse == 0 else 10 * math.log10(255**2 / mse)


def child_memory(name: str, path: str, boxes: str, fmt: str, quality: str) -> dict[str, float]:
    """Runs in a fresh interpreter: peak RSS before (idle) and after two runs of one job."""
    import pyvips

    pyvips.concurrency_set(1)
    thumbs = thumbs_by_name(name)
    data = Path(path).read_bytes()
    idle = peak_rss_mib()
    for _ in range(2):
        thumbs(data, tuple(int(b) for b in boxes.split(",")), fmt, int(quality))
    return {"idle": idle, "peak": peak_rss_mib()}


GNU_TIME = Path("/usr/bin/time")  # Debian package `time` (bench/setup-peers.sh installs it)


def _small_parent(argv: list[str], report: Path) -> list[str]:
    """Run `argv` as the child of GNU time, which writes the child's peak RSS (KiB).

    Linux carries a process's RSS high-water mark across fork+exec, so anything started
    straight from this (large) process would report at least our own peak; time is tiny.
    """
    return [str(GNU_TIME), "-f", "%M", "-o", str(report), *argv]


def _peak_rss_of(argv: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "rss"
        subprocess.run(_small_parent(argv, report), check=True, capture_output=True)
        return int(report.read_text().split()[-1]) / 1024


def measure_memory(source: Input, path: Path, job: Job) -> list[dict[str, Any]]:
    """Peak RSS per implementation, each in its own fresh process (nothing else counted).

    Python peers: `python -m bench.engine --child-memory` reports peak_rss_mib() after the
    imports and reading the input (idle) and after running the job twice (peak).
    vipsthumbnail: peak over its per-size runs; idle = the same on a 16x16 image.
    Every child runs under GNU time (see `_small_parent`).
    """
    if not GNU_TIME.is_file():
        return [{"input": source.name, "impl": "all", "status": f"{GNU_TIME} missing"}]
    rows = []
    boxes = ",".join(map(str, job.boxes))
    for name in ("ours", "pillow", "thumbor", "pillow-once"):
        argv = [sys.executable, "-m", "bench.engine", "--child-memory", name, str(path), boxes]
        argv += [job.fmt, str(QUALITY)]
        with tempfile.TemporaryDirectory() as tmp:
            done = subprocess.run(
                _small_parent(argv, Path(tmp) / "rss"), capture_output=True, text=True
            )
        if done.returncode != 0:
            rows.append({"input": source.name, "impl": name, "status": done.stderr[-200:]})
            continue
        found = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(_memory_row(source, name, found["peak"], found["idle"]))
    tool = peers.vipsthumbnail_binary()
    if tool is not None:
        with tempfile.TemporaryDirectory() as tmp:
            import pyvips

            tiny = Path(tmp) / "tiny.jpg"
            tiny.write_bytes(pyvips.Image.black(16, 16, bands=3).jpegsave_buffer())
            out = f"{tmp}/%s_t.jpg[Q={QUALITY},optimize_coding,strip]"
            idle = _peak_rss_of([str(tool), "-s", "8", "-o", out, str(tiny)])
            peak = max(
                _peak_rss_of([str(tool), "-s", f"{b}x{b}", "-o", out, str(path)]) for b in job.boxes
            )
        rows.append(_memory_row(source, "vipsthumbnail", peak, idle))
    return rows


def _memory_row(source: Input, name: str, peak: float, idle: float) -> dict[str, Any]:
    return {
        "input": source.name,
        "impl": name,
        "peak RSS MiB": peak,
        "idle MiB": idle,
        "work MiB": peak - idle,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 rounds, 1.5 s a case")
    parser.add_argument("--rounds", type=int, default=15, help="max timed rounds per case")
    parser.add_argument("--budget", type=float, default=8.0, help="max seconds per case")
    parser.add_argument("--core", type=int, default=None, help="CPU to pin to (default: last)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-RSS children")
    parser.add_argument("--only", default="", help="comma-separated substrings of 'input / job'")
    parser.add_argument("--results", default="engine", help="bench/results/<name>.json")
    parser.add_argument(
        "--baseline", type=Path, help="also time this imaging package dir as ours@baseline"
    )
    parser.add_argument("--child-memory", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.budget = min(args.rounds, 3), min(args.budget, 1.5)
    return args


def selected(only: str, case: str) -> bool:
    return not only or any(part.strip().lower() in case.lower() for part in only.split(","))


def versions() -> dict[str, str]:
    import PIL
    import pyvips

    found = {
        "ours (libvips of pyvips-binary)": ".".join(str(pyvips.version(i)) for i in range(3)),
        "Pillow": PIL.__version__,
        "thumbor": peers.thumbor_version() or "not installed",
    }
    tool = peers.vipsthumbnail_binary()
    if tool:
        out = subprocess.run([str(tool), "--vips-version"], capture_output=True, text=True)
        found["vipsthumbnail"] = out.stdout.strip()
    found["imgproxy"] = str(peers.imgproxy_binary() or "not available")
    return found


def run_case(
    source: Input, job: Job, data: bytes, impls: dict[str, Impl], args: argparse.Namespace
) -> list[dict[str, Any]]:
    progress(f"{source.name} -> {job.name}")
    samples, outputs = time_case(data, job, impls, args.rounds, args.budget)
    medians = {name: summary([c.cpu for c in s])["median"] for name, s in samples.items() if s}
    fastest = best_peer(medians, impls)
    rows = []
    for name, impl in impls.items():
        row: dict[str, Any] = {"input": source.name, "job": job.name, "impl": name}
        if impl.unavailable:
            rows.append({**row, "status": f"not available: {impl.unavailable}"})
            continue
        cpu = summary([c.cpu for c in samples[name]])
        wall = summary([c.wall for c in samples[name]])
        made = outputs[name]
        row |= {
            "status": "ok",
            "n": cpu["n"],
            "img/s/core": 1 / cpu["median"],
            "cpu ms": cpu["median"] * 1e3,
            "wall ms": wall["median"] * 1e3,
            "wall p95 ms": wall["p95"] * 1e3,
            "vs fastest peer": cpu["median"] / medians[fastest] if fastest else None,
            "out KiB": sum(len(o) for o in made) / 1024,
            "PSNR dB": min(psnr(source.megapixels, o) for o in made),
        }
        rows.append(row)
    return rows


def verdicts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per case: ours against the fastest peer of the same run, and whether the target holds."""
    out = []
    for source in INPUTS:
        for job in JOBS:
            case = [r for r in rows if r["input"] == source.name and r["job"] == job.name]
            timed_ms = {r["impl"]: r["cpu ms"] for r in case if r["status"] == "ok"}
            peer_ms = {k: v for k, v in timed_ms.items() if k not in ("ours", BASELINE)}
            if "ours" not in timed_ms or not peer_ms:
                continue
            fastest = min(peer_ms, key=peer_ms.__getitem__)
            ratio = timed_ms["ours"] / peer_ms[fastest]
            need = CLEARLY_FASTER if job is MULTI else 1.0
            out.append(
                {
                    "input": source.name,
                    "job": job.name,
                    "ours img/s": 1e3 / timed_ms["ours"],
                    "fastest peer": fastest,
                    "peer img/s": 1e3 / peer_ms[fastest],
                    "ours/peer time": ratio,
                    "target": f"<= {need:.2f}",
                    "met": "yes" if ratio <= need else "NO",
                }
            )
    return out


def main() -> None:
    args = parse_args()
    if args.child_memory:
        print(json.dumps(child_memory(*args.child_memory)))
        return
    core = args.core if args.core is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})  # children (vipsthumbnail, servers, RSS probes) inherit
    os.environ.update(peers.one_core_env(1))
    import pyvips

    pyvips.concurrency_set(1)
    facts: dict[str, Any] = {"versions": versions(), "corpus": corpus.source(), "pinned_cpu": core}
    progress(f"pinned to CPU {core}; {facts['versions']}")
    baseline = baseline_impl(args.baseline) if args.baseline else None
    if args.baseline:
        facts["baseline"] = str(args.baseline)
    rows: list[dict[str, Any]] = []
    memory: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp,
        imgproxy_server(Path(tmp)) as imgproxy,
    ):
        work = Path(tmp)
        if isinstance(imgproxy, Imgproxy):
            facts["imgproxy HTTP overhead ms"] = imgproxy.overhead_ms()
        if peers.vipsthumbnail_binary():
            facts["vipsthumbnail start-up ms"] = vipsthumbnail_startup_ms()
        for number, source in enumerate(INPUTS):
            jobs = [j for j in JOBS if selected(args.only, f"{source.name} / {j.name}")]
            if not jobs:
                continue
            progress(f"generating {source.name} ({corpus.source()})")
            data = source.make()
            path = work / f"input{number}{source.suffix}"
            path.write_bytes(data)
            progress(f"{source.name}: {len(data) / 1e6:.2f} MB")
            batch = VipsBatch(path, work / f"vips{number}")
            for job in jobs:
                impls = in_process_impls(job is MULTI, baseline) | {"vipsthumbnail": batch.impl()}
                impls["imgproxy"] = (
                    imgproxy.impl(path)
                    if isinstance(imgproxy, Imgproxy)
                    else Impl(unavailable=imgproxy)
                )
                rows.extend(run_case(source, job, data, impls, args))
            if not args.no_memory and not args.only:
                progress(f"{source.name}: peak memory, one fresh process per implementation")
                memory.extend(measure_memory(source, path, MULTI))
        if isinstance(imgproxy, Imgproxy):
            peak = imgproxy.peak_rss_mib()
            memory.append({"input": "every case", "impl": "imgproxy", "peak RSS MiB": peak})
    report(rows, memory, facts, args)


def report(
    rows: list[dict[str, Any]],
    memory: list[dict[str, Any]],
    facts: dict[str, Any],
    args: argparse.Namespace,
) -> None:
    verdict = verdicts(rows)
    columns = ["input", "job", "impl", "img/s/core", "cpu ms", "wall ms", "wall p95 ms"]
    columns += ["vs fastest peer"]
    columns += ["out KiB", "PSNR dB", "n", "status"]
    print(f"\n{json.dumps(facts)}")
    print("\n## Targets (median CPU time ours / fastest peer; below 1 is faster)\n")
    print(markdown_table(verdict, list(verdict[0]) if verdict else ["none"]))
    print("\n## All implementations\n")
    print(markdown_table(rows, columns))
    if memory:
        print("\n## Peak memory (fresh process per implementation, 3-size JPEG job)\n")
        print(markdown_table(memory, ["input", "impl", "peak RSS MiB", "idle MiB", "work MiB"]))
    write_results(
        args.results,
        rows,
        **facts,
        quality=QUALITY,
        quick=args.quick,
        targets=verdict,
        memory=memory,
    )


if __name__ == "__main__":
    main()
