"""Decode-once benchmark: our multi-size render vs one thumbnail_buffer per size (same run).

    .venv/bin/python -m bench.decode_once [--quick] [--rounds N] [--budget S] [--concurrency C]

Inputs are the shared photographic corpus (`bench.corpus`): 2 MP and 12 MP JPEG, 2 MP PNG.
Every case runs each implementation interleaved round by round (rotating the order), bounded
by --rounds and --budget seconds (`bench.common.bounded`), with the libvips operation cache
off and the same encoder settings (`imaging.encode`), so the ratios measure decoding and
resizing strategy, not encoder choices. Reported: median ms, images/s, the ratio to the
naive baseline of the same run (< 1.0 means faster), output KiB and the worst PSNR of the
sizes against the naive output.
"""

from __future__ import annotations

import argparse
import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyvips

from bench import corpus
from bench.common import bounded, markdown_table, progress, summary, write_results
from thumbnail_service.imaging import (
    FitMode,
    ImageFormat,
    OutputFormat,
    RenderOptions,
    SizeSpec,
    libvips_version,
    render,
)
from thumbnail_service.imaging.encode import encode, resolve_format, to_srgb

PRESETS = (SizeSpec("large", 1024, 1024), SizeSpec("medium", 512, 512), SizeSpec("small", 128, 128))
ALL = frozenset(ImageFormat)
BASELINE = "naive"
Impl = Callable[[bytes, RenderOptions], list[bytes]]


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], bytes]
    options: RenderOptions


def cases() -> list[Case]:
    presets = RenderOptions(PRESETS)
    single = RenderOptions((SizeSpec("thumb", 256, 256),))
    return [
        Case("2 MP JPEG, 3 presets", lambda: corpus.photo_jpeg(2), presets),
        Case("12 MP JPEG, 3 presets", lambda: corpus.photo_jpeg(12), presets),
        Case("2 MP PNG, 3 presets", lambda: corpus.photo_png(2), presets),
        Case("2 MP JPEG, 256 px only", lambda: corpus.photo_jpeg(2), single),
        Case("12 MP JPEG, 256 px only", lambda: corpus.photo_jpeg(12), single),
        Case(
            "12 MP JPEG, 3 presets, cover",
            lambda: corpus.photo_jpeg(12),
            RenderOptions(PRESETS, fit=FitMode.COVER),
        ),
    ]


# --- implementations ---------------------------------------------------------------------


def ours(data: bytes, options: RenderOptions) -> list[bytes]:
    thumbs = render(data, options, allowed=ALL, max_pixels=10**9, timeout_seconds=60)
    return [t.data for t in thumbs]


def _fmt(data: bytes, image: pyvips.Image) -> OutputFormat:
    source = ImageFormat.PNG if data.startswith(b"\x89PNG") else ImageFormat.JPEG
    return resolve_format(OutputFormat.AUTO, source, bool(image.hasalpha()))


def _fit(options: RenderOptions) -> dict[str, str]:
    crop = {FitMode.COVER: "centre", FitMode.SMART: "attention"}.get(options.fit)
    return {"size": "down"} if crop is None else {"size": "both", "crop": crop}


def naive(data: bytes, options: RenderOptions) -> list[bytes]:
    """The baseline, what most services do: one shrink-on-load thumbnail_buffer per size."""
    out = []
    for spec in options.sizes:
        image = pyvips.Image.thumbnail_buffer(
            data, spec.width, height=spec.height, option_string="fail_on=error", **_fit(options)
        )
        image = to_srgb(image)
        out.append(encode(image, _fmt(data, image), options.quality))
    return out


def once_libvips_shrink(data: bytes, options: RenderOptions) -> list[bytes]:
    """Ablation: decode once for the largest size but with libvips' own (2x-margin) shrink."""
    largest = max(options.sizes, key=lambda s: s.width * s.height)
    # COVER needs the short side to reach the box: decode for the box's long edge.
    edge = max(largest.width, largest.height)
    box = (largest.width, largest.height) if options.fit is FitMode.INSIDE else (edge, edge)
    base = pyvips.Image.thumbnail_buffer(
        data, box[0], height=box[1], size="down", option_string="fail_on=error"
    )
    base = to_srgb(base).copy_memory()
    fmt = _fmt(data, base)
    fit = _fit(options)
    return [
        encode(base.thumbnail_image(s.width, height=s.height, **fit), fmt, options.quality)
        for s in options.sizes
    ]


def pillow(data: bytes, options: RenderOptions) -> list[bytes]:
    from PIL import Image

    out = []
    for spec in options.sizes:
        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", (spec.width, spec.height))
            im.thumbnail((spec.width, spec.height))
            buf = io.BytesIO()
            im.save(buf, format=im.format or "JPEG", quality=options.quality)
            out.append(buf.getvalue())
    return out


def implementations() -> dict[str, Impl]:
    impls: dict[str, Impl] = {
        "ours": ours,
        BASELINE: naive,
        "once+libvips-shrink": once_libvips_shrink,
    }
    try:
        import PIL  # noqa: F401

        impls["pillow"] = pillow
    except ImportError:
        progress("Pillow not installed (make bench-peers): skipping that baseline")
    return impls


# --- measurement -------------------------------------------------------------------------


def psnr(a: bytes, b: bytes) -> float:
    x = pyvips.Image.new_from_buffer(a, "")
    y = pyvips.Image.new_from_buffer(b, "")
    if (x.width, x.height) != (y.width, y.height):
        y = y.thumbnail_image(x.width, height=x.height, size="force")
    mse = float(((x.cast("float") - y.cast("float")) ** 2).avg())
    return 99.0 if mse == 0 else 10 * math.log10(255**2 / mse)


def run_case(
    case: Case, impls: dict[str, Impl], rounds: int, budget: float
) -> list[dict[str, Any]]:
    data = case.make()
    progress(f"{case.name}: {len(data) / 1e6:.2f} MB input")
    outputs = {name: impl(data, case.options) for name, impl in impls.items()}  # warm-up
    times: dict[str, list[float]] = {name: [] for name in impls}
    names = list(impls)
    for index in bounded(rounds, budget):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            t0 = time.perf_counter()
            impls[name](data, case.options)
            times[name].append(time.perf_counter() - t0)
    base = summary(times[BASELINE])["median"]
    rows = []
    for name in names:
        stats = summary(times[name])
        rows.append(
            {
                "case": case.name,
                "impl": name,
                "median ms": stats["median"] * 1e3,
                "p95 ms": stats["p95"] * 1e3,
                "img/s": 1 / stats["median"],
                f"vs {BASELINE}": stats["median"] / base,
                "out KiB": sum(len(o) for o in outputs[name]) / 1024,
                f"PSNR vs {BASELINE} dB": min(
                    psnr(a, b) for a, b in zip(outputs[name], outputs[BASELINE], strict=True)
                ),
                "n": stats["n"],
            }
        )
    ratio = rows[0][f"vs {BASELINE}"]
    progress(f"{case.name}: ours {rows[0]['median ms']:.1f} ms, ours/{BASELINE} {ratio:.2f}")
    return rows


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 rounds, 1.5 s a case")
    parser.add_argument("--rounds", type=int, default=15, help="max timed rounds per case")
    parser.add_argument("--budget", type=float, default=20.0, help="max seconds per case")
    parser.add_argument("--concurrency", type=int, default=1, help="libvips threads")
    parser.add_argument("--results", default="decode_once", help="bench/results/<name>.json")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.budget = min(args.rounds, 3), min(args.budget, 1.5)
    return args


def main() -> None:
    args = parse_args()
    pyvips.concurrency_set(args.concurrency)
    pyvips.cache_set_max(0)  # the engine disables it too; keep the baselines honest
    impls = implementations()
    facts = {
        "libvips": libvips_version(),
        "concurrency": args.concurrency,
        "corpus": corpus.source(),
        "baseline": BASELINE,
    }
    progress(f"libvips {facts['libvips']}, concurrency {args.concurrency}, {facts['corpus']}")
    rows = [row for case in cases() for row in run_case(case, impls, args.rounds, args.budget)]
    columns = ["case", "impl", "median ms", "p95 ms", "img/s", f"vs {BASELINE}", "out KiB"]
    print(markdown_table(rows, [*columns, f"PSNR vs {BASELINE} dB", "n"]))
    write_results(args.results, rows, **facts, quick=args.quick)


if __name__ == "__main__":
    main()
