"""Benchmark: decode-once multi-size render vs one thumbnail_buffer per size (same run).

Usage: .venv/bin/python bench/bench_imaging.py [--rounds N] [--budget S] [--concurrency C]

Every case is bounded by --rounds and by --budget seconds. Implementations run interleaved
round by round, so drift on a shared machine hits them alike; we report medians and the
ratio ours/baseline (< 1.0 means ours is faster). All paths use the same encoder settings.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyvips

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
Impl = Callable[[bytes, RenderOptions], list[bytes]]


def photo(width: int, height: int) -> pyvips.Image:
    """Photo-like content: smooth gradients plus blurred noise (JPEG entropy of a photo)."""
    noise = pyvips.Image.gaussnoise(width // 4, height // 4, sigma=40).gaussblur(1.2)
    noise = noise.resize(4, kernel="cubic")
    xyz = pyvips.Image.xyz(noise.width, noise.height)
    r = xyz[0] * 200 / width + noise
    g = xyz[1] * 200 / height + noise * 0.6
    b = (xyz[0] + xyz[1]) * 120 / (width + height) + noise * 0.8
    return r.bandjoin([g, b]).cast("uchar").copy(interpretation="srgb")


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
    """What most services do: one shrink-on-load thumbnail_buffer per size."""
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
    import io

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


@dataclass
class Case:
    name: str
    data: bytes
    options: RenderOptions


def cases() -> list[Case]:
    print("generating inputs ...", flush=True)
    two_mp, twelve_mp = photo(1920, 1080), photo(4000, 3000)
    single = RenderOptions((SizeSpec("thumb", 256, 256),))
    presets = RenderOptions(PRESETS)
    return [
        Case("2MP JPEG, 3 presets", two_mp.write_to_buffer(".jpg", Q=90), presets),
        Case("12MP JPEG, 3 presets", twelve_mp.write_to_buffer(".jpg", Q=90), presets),
        Case("2MP PNG, 3 presets", two_mp.write_to_buffer(".png"), presets),
        Case("2MP JPEG, 256 px only", two_mp.write_to_buffer(".jpg", Q=90), single),
        Case("12MP JPEG, 256 px only", twelve_mp.write_to_buffer(".jpg", Q=90), single),
        Case(
            "12MP JPEG, 3 presets, cover",
            twelve_mp.write_to_buffer(".jpg", Q=90),
            RenderOptions(PRESETS, fit=FitMode.COVER),
        ),
    ]


def psnr(a: bytes, b: bytes) -> float:
    x = pyvips.Image.new_from_buffer(a, "")
    y = pyvips.Image.new_from_buffer(b, "")
    if (x.width, x.height) != (y.width, y.height):
        y = y.thumbnail_image(x.width, height=x.height, size="force")
    mse = float(((x.cast("float") - y.cast("float")) ** 2).avg())
    return 99.0 if mse == 0 else 10 * math.log10(255**2 / mse)


def run_case(case: Case, impls: dict[str, Impl], rounds: int, budget: float) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in impls}
    outputs = {name: impl(case.data, case.options) for name, impl in impls.items()}  # warm-up
    started = time.perf_counter()
    for _ in range(rounds):
        for name, impl in impls.items():
            t0 = time.perf_counter()
            impl(case.data, case.options)
            times[name].append(time.perf_counter() - t0)
        if time.perf_counter() - started > budget:
            break
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    n = len(times["ours"])
    base = medians["naive"]
    for name, med in medians.items():
        size_kb = sum(len(o) for o in outputs[name]) / 1024
        quality = min(psnr(a, b) for a, b in zip(outputs[name], outputs["naive"], strict=True))
        print(
            f"  {name:<20} {med * 1000:8.1f} ms  {1 / med:7.1f} img/s  ratio {med / base:5.2f}"
            f"  out {size_kb:7.1f} KiB  PSNR vs naive >= {quality:5.1f} dB  (n={n})",
            flush=True,
        )
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="max timed rounds per case")
    parser.add_argument("--budget", type=float, default=20.0, help="max seconds per case")
    parser.add_argument("--concurrency", type=int, default=1, help="libvips threads")
    args = parser.parse_args()
    pyvips.concurrency_set(args.concurrency)
    pyvips.cache_set_max(0)  # the engine disables it too; keep the baselines honest
    impls: dict[str, Impl] = {
        "ours": ours,
        "naive": naive,
        "once+libvips-shrink": once_libvips_shrink,
    }
    try:
        import PIL  # noqa: F401

        impls["pillow"] = pillow
    except ImportError:
        print("Pillow not installed: skipping that baseline")
    print(f"libvips {libvips_version()}, concurrency {args.concurrency}")
    summary = []
    for case in cases():
        print(f"{case.name}: {len(case.data) / 1e6:.1f} MB input", flush=True)
        medians = run_case(case, impls, args.rounds, args.budget)
        summary.append((case.name, medians))
    print("\n| case | ours ms | naive ms | ours/naive | once+libvips-shrink/naive |")
    print("|---|---|---|---|---|")
    for name, m in summary:
        print(
            f"| {name} | {m['ours'] * 1000:.1f} | {m['naive'] * 1000:.1f} "
            f"| {m['ours'] / m['naive']:.2f} | {m['once+libvips-shrink'] / m['naive']:.2f} |"
        )


if __name__ == "__main__":
    main()
