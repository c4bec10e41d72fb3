from __future__ import annotations

import pytest
import pyvips

from thumbnail_service.imaging import (
    CorruptImageError,
    FitMode,
    ImageFormat,
    ImageTooLargeError,
    OutputFormat,
    RenderOptions,
    SizeSpec,
    Thumbnail,
    UnsupportedFormatError,
    probe,
    render,
    sniff_format,
)

from .. import samples

ALL = samples.ALL_FORMATS
LIMIT = 50_000_000
SIZES = (SizeSpec("large", 400, 400), SizeSpec("small", 64, 64), SizeSpec("wide", 200, 50))
SNIFFED = {
    OutputFormat.JPEG: ImageFormat.JPEG,
    OutputFormat.PNG: ImageFormat.PNG,
    OutputFormat.WEBP: ImageFormat.WEBP,
    OutputFormat.AVIF: ImageFormat.AVIF,
}


def _render(data: bytes, **options: object) -> list[Thumbnail]:
    opts = RenderOptions(**{"sizes": SIZES, **options})  # type: ignore[arg-type]
    return render(data, opts, allowed=ALL, max_pixels=LIMIT, timeout_seconds=30)


def _check(thumb: Thumbnail) -> pyvips.Image:
    """The declared facts of a thumbnail must match its bytes."""
    assert sniff_format(thumb.data) is SNIFFED[thumb.format]
    assert thumb.content_type == f"image/{thumb.format.value}"
    image = samples.decode(thumb.data)
    assert (image.width, image.height) == (thumb.width, thumb.height)
    assert image.interpretation == "srgb"
    assert image.format == "uchar"
    return image


def test_inside_fits_box_keeps_aspect_and_order() -> None:
    thumbs = _render(samples.jpeg(1200, 800))
    assert [t.name for t in thumbs] == ["large", "small", "wide"]
    assert [(t.width, t.height) for t in thumbs] == [(400, 267), (64, 43), (75, 50)]
    for thumb in thumbs:
        _check(thumb)


def test_inside_never_upscales() -> None:
    thumbs = _render(samples.jpeg(120, 90))
    assert [(t.width, t.height) for t in thumbs] == [(120, 90), (64, 48), (67, 50)]


@pytest.mark.parametrize("fit", [FitMode.COVER, FitMode.SMART])
def test_cover_and_smart_are_exact_even_when_upscaling(fit: FitMode) -> None:
    for source in (samples.jpeg(1200, 800), samples.jpeg(120, 90)):
        thumbs = _render(source, fit=fit)
        assert [(t.width, t.height) for t in thumbs] == [(400, 400), (64, 64), (200, 50)]
        for thumb in thumbs:
            _check(thumb)


def test_smart_crop_follows_the_interesting_part() -> None:
    # A busy red/white checkerboard on the right of a flat grey field: attention
    # crop must keep it, a centre crop would not.
    flat = (pyvips.Image.black(300, 100, bands=3) + 128).cast("uchar")
    xy = pyvips.Image.xyz(100, 100)
    checker = ((xy[0] // 10 + xy[1] // 10) % 2 == 0).ifthenelse([255, 0, 0], [255, 255, 255])
    image = flat.insert(checker.cast("uchar"), 200, 0).copy(interpretation="srgb")
    data = samples.encode(image, ".png")
    size = (SizeSpec("sq", 100, 100),)
    smart = samples.decode(_render(data, sizes=size, fit=FitMode.SMART)[0].data)
    centre = samples.decode(_render(data, sizes=size, fit=FitMode.COVER)[0].data)
    assert smart.deviate() > 50 > centre.deviate()


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tif", ".avif"])
def test_orientation_is_applied_then_dropped(suffix: str) -> None:
    # Stored 300x200 with the red marker top-left; orientation 6 = rotate 90 deg clockwise,
    # so it displays 200x300 with the marker top-right (AVIF stores it as an irot box).
    image = samples.canvas(300, 200).copy()
    image.set_type(pyvips.GValue.gint_type, "orientation", 6)
    data = samples.encode(image, suffix)
    thumb = _render(data, sizes=(SizeSpec("t", 100, 150),), format=OutputFormat.PNG)[0]
    out = _check(thumb)
    assert (out.width, out.height) == (100, 150)
    red_top_right = out.crop(out.width - 10, 0, 10, 10)
    red_top_left = out.crop(0, 0, 10, 10)
    assert red_top_right[0].avg() > 200 and red_top_right[1].avg() < 60
    assert red_top_left[1].avg() > 60  # the gradient, not the marker
    assert out.get_typeof("orientation") == 0


def test_metadata_is_stripped() -> None:
    source = samples.canvas(300, 200).icc_transform("p3")  # embeds an ICC profile
    source.set_type(pyvips.GValue.gint_type, "orientation", 1)
    source.set_type(pyvips.GValue.gstr_type, "exif-ifd0-Artist", "secret author")
    data = samples.encode(source, ".jpg", Q=90)
    assert b"Exif" in data and b"ICC_PROFILE" in data
    for fmt in (OutputFormat.JPEG, OutputFormat.PNG, OutputFormat.WEBP):
        for thumb in _render(data, format=fmt):
            image = _check(thumb)
            fields = image.get_fields()
            assert not [f for f in fields if f.startswith(("exif", "xmp", "iptc", "icc"))]
            assert b"Exif" not in thumb.data and b"secret author" not in thumb.data


def test_embedded_profile_is_converted_to_srgb() -> None:
    colour = [200, 60, 40]
    srgb = (pyvips.Image.black(64, 64, bands=3) + colour).cast("uchar").copy(interpretation="srgb")
    p3 = srgb.icc_transform("p3")  # same colour, P3 numbers, P3 profile attached
    assert max(abs(a - b) for a, b in zip(p3(0, 0), colour, strict=True)) > 10
    thumb = _render(samples.encode(p3, ".png"), sizes=(SizeSpec("t", 32, 32),))[0]
    pixel = _check(thumb)(16, 16)
    assert all(abs(a - b) <= 3 for a, b in zip(pixel, colour, strict=True))


@pytest.mark.parametrize(
    ("image", "interpretation", "suffix"),
    [
        (samples.canvas(80, 60).icc_transform("cmyk"), "cmyk", ".jpg"),
        (samples.canvas(80, 60).icc_transform("cmyk"), "cmyk", ".tif"),
        (samples.canvas(80, 60).colourspace("b-w"), "b-w", ".jpg"),
        (samples.canvas(80, 60).colourspace("b-w"), "b-w", ".png"),
        ((samples.canvas(80, 60) * 256).cast("ushort"), "rgb16", ".png"),
    ],
    ids=["cmyk-jpeg", "cmyk-tiff", "grey-jpeg", "grey-png", "16-bit-png"],
)
def test_other_colour_spaces_become_8bit_srgb(
    image: pyvips.Image, interpretation: str, suffix: str
) -> None:
    data = samples.encode(image.copy(interpretation=interpretation), suffix)
    source = samples.decode(data)
    assert source.interpretation == interpretation
    for thumb in _render(data, format=OutputFormat.PNG):
        assert _check(thumb).bands == 3


@pytest.mark.parametrize(
    ("suffix", "alpha", "expected"),
    [
        (".jpg", False, OutputFormat.JPEG),
        (".png", False, OutputFormat.PNG),
        (".png", True, OutputFormat.PNG),
        (".webp", False, OutputFormat.WEBP),
        (".webp", True, OutputFormat.WEBP),
        (".gif", False, OutputFormat.PNG),
        (".tif", False, OutputFormat.JPEG),
        (".tif", True, OutputFormat.PNG),
        (".avif", False, OutputFormat.JPEG),
        (".avif", True, OutputFormat.PNG),
    ],
)
def test_auto_format(suffix: str, alpha: bool, expected: OutputFormat) -> None:
    image = samples.canvas(120, 80)
    data = samples.encode(samples.with_alpha(image) if alpha else image, suffix)
    for thumb in _render(data):
        assert thumb.format is expected
        decoded = _check(thumb)
        if expected is not OutputFormat.JPEG:
            assert bool(decoded.hasalpha()) == alpha


def test_gif_uses_first_frame() -> None:
    thumb = _render(samples.animated_gif(40, 20, frames=3), sizes=(SizeSpec("t", 40, 40),))[0]
    image = _check(thumb)
    assert (image.width, image.height) == (40, 20)  # one frame, not the 40x60 strip


def test_explicit_formats_and_jpeg_flattens_alpha_on_white() -> None:
    transparent = samples.with_alpha(samples.canvas(60, 40), alpha=0)
    data = samples.encode(transparent, ".png")
    for fmt in (OutputFormat.WEBP, OutputFormat.AVIF, OutputFormat.PNG):
        assert {t.format for t in _render(data, format=fmt)} == {fmt}
        for thumb in _render(data, format=fmt):
            _check(thumb)
    jpeg = _check(_render(data, format=OutputFormat.JPEG)[0])
    assert jpeg.bands == 3
    assert jpeg.min() > 240  # fully transparent -> white


def test_quality_changes_lossy_output() -> None:
    data = samples.jpeg(800, 600)
    low = _render(data, quality=10)[0]
    high = _render(data, quality=95)[0]
    assert len(low.data) < len(high.data)
    assert samples.psnr(samples.decode(low.data), samples.decode(high.data)) < 45


def test_multi_size_matches_independent_thumbnails() -> None:
    """Deriving from the decode-once image must look like one thumbnail_buffer per size."""
    data = samples.jpeg(1600, 1200)
    for fit, crop in ((FitMode.INSIDE, "none"), (FitMode.COVER, "centre")):
        for thumb, spec in zip(_render(data, fit=fit, format=OutputFormat.PNG), SIZES, strict=True):
            reference = pyvips.Image.thumbnail_buffer(
                data, spec.width, height=spec.height, crop=crop, size="down"
            )
            ours = samples.decode(thumb.data)
            assert abs(ours.width - reference.width) <= 1
            assert abs(ours.height - reference.height) <= 1
            if (ours.width, ours.height) == (reference.width, reference.height):
                assert samples.psnr(ours, reference) > 30


def test_decodes_the_upload_only_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    for name in ("thumbnail_buffer", "jpegload_buffer", "new_from_buffer"):
        original = getattr(pyvips.Image, name)

        def spy(*args: object, _name: str = name, _orig: object = original, **kw: object) -> object:
            calls.append(_name)
            return _orig(*args, **kw)  # type: ignore[operator]

        monkeypatch.setattr(pyvips.Image, name, staticmethod(spy), raising=False)
    _render(samples.jpeg(1200, 800))
    assert calls == ["new_from_buffer", "jpegload_buffer"]  # header, then one decode
    calls.clear()
    _render(samples.encode(samples.canvas(600, 400), ".png"))
    assert calls == ["new_from_buffer", "thumbnail_buffer"]


def test_truncated_jpeg_probes_but_fails_to_render_as_corrupt() -> None:
    data = samples.jpeg(800, 600)
    truncated = data[: len(data) // 2]
    assert probe(truncated, allowed=ALL, max_pixels=LIMIT).width == 800  # header intact
    with pytest.raises(CorruptImageError):
        _render(truncated)


@pytest.mark.parametrize("suffix", [".png", ".gif", ".webp", ".tif", ".avif"])
def test_truncated_images_are_corrupt(suffix: str) -> None:
    data = samples.encode(samples.canvas(400, 300), suffix)
    with pytest.raises(CorruptImageError):
        _render(data[: len(data) // 2])


def test_bomb_is_refused_before_decoding() -> None:
    with pytest.raises(ImageTooLargeError):
        _render(samples.zero_png(20_000, 20_000))


def test_requested_size_is_bounded_by_the_pixel_limit() -> None:
    opts = RenderOptions((SizeSpec("huge", 5000, 5000),), fit=FitMode.COVER)
    with pytest.raises(ImageTooLargeError, match="huge"):
        render(samples.jpeg(100, 100), opts, allowed=ALL, max_pixels=1_000_000, timeout_seconds=5)


@pytest.mark.parametrize("data", [samples.noise_bytes(), samples.SVG], ids=["noise", "svg"])
def test_non_images_are_unsupported(data: bytes) -> None:
    with pytest.raises(UnsupportedFormatError):
        _render(data)


@pytest.mark.parametrize(
    "kwargs",
    [{"sizes": ()}, {"quality": 0}, {"quality": 101}, {"sizes": (SIZES[0], SIZES[0])}],
)
def test_invalid_options(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RenderOptions(**{"sizes": SIZES, **kwargs})  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SizeSpec("zero", 0, 10)


# --- COVER/SMART that enlarge: crop first, scale only what is kept ----------------------------

STRIP_SIZES = (
    SizeSpec("large", 1024, 1024),
    SizeSpec("medium", 512, 512),
    SizeSpec("small", 128, 128),
)


def _strip(width: int, height: int) -> pyvips.Image:
    """Red rises from 0 at the left to 255 at the right: a crop's red tells where it was."""
    red = pyvips.Image.xyz(width, height)[0] * (255 / (width - 1))
    return red.bandjoin([64, 64]).cast("uchar").copy(interpretation="srgb")


@pytest.mark.parametrize("fit", [FitMode.COVER, FitMode.SMART])
def test_extreme_strip_to_cover_is_cropped_before_it_is_scaled(fit: FitMode) -> None:
    # Scaling the whole 8000x10 strip before cropping made a 819200x1024 image for `large`
    # (15 s here, 31 s in a worker): past this 3 s limit, ProcessingTimeoutError.
    data = samples.encode(_strip(8000, 10), ".png")
    options = RenderOptions(STRIP_SIZES, fit=fit, format=OutputFormat.PNG)
    thumbs = render(data, options, allowed=ALL, max_pixels=LIMIT, timeout_seconds=3)
    assert [(t.width, t.height) for t in thumbs] == [(1024, 1024), (512, 512), (128, 128)]
    for thumb in thumbs:
        image = _check(thumb)
        if fit is FitMode.COVER:  # the middle 10x10 of the strip: red ~127 everywhere
            assert abs(image[0].avg() - 127.5) < 2 and image[0].deviate() < 2


def test_smart_enlargement_finds_the_interesting_part_of_a_strip() -> None:
    # A busy checkerboard in the right tenth of a flat 600x20 strip; to 400x400 (x20) only a
    # 20x20 source square is kept: attention must pick it from the checkerboard.
    flat = (pyvips.Image.black(600, 20, bands=3) + 128).cast("uchar")
    xy = pyvips.Image.xyz(60, 20)
    checker = ((xy[0] // 4 + xy[1] // 4) % 2 == 0).ifthenelse([255, 0, 0], [255, 255, 255])
    image = flat.insert(checker.cast("uchar"), 540, 0).copy(interpretation="srgb")
    data = samples.encode(image, ".png")
    size = (SizeSpec("sq", 400, 400),)
    smart = samples.decode(_render(data, sizes=size, fit=FitMode.SMART)[0].data)
    centre = samples.decode(_render(data, sizes=size, fit=FitMode.COVER)[0].data)
    assert smart.deviate() > 50 > centre.deviate()


@pytest.mark.parametrize(
    ("source", "box"),
    [((10, 10), (100, 100)), ((20, 30), (200, 100)), ((8000, 10), (1024, 1024))],
)
def test_enlarging_cover_has_the_pixels_of_resize_then_crop(
    source: tuple[int, int], box: tuple[int, int]
) -> None:
    """Where the window falls on whole pixels, the result is libvips' own enlargement of the
    whole image cropped afterwards (computed lazily here, only the window is evaluated)."""
    image = _strip(*source)
    thumb = _render(samples.encode(image, ".png"), sizes=(SizeSpec("t", *box),),
                    fit=FitMode.COVER, format=OutputFormat.PNG)[0]
    scale = max(box[0] / source[0], box[1] / source[1])
    scaled = image.resize(scale)
    left, top = (scaled.width - box[0]) // 2, (scaled.height - box[1]) // 2
    reference = scaled.crop(left, top, *box)
    assert (samples.decode(thumb.data) - reference).abs().max() == 0


def test_enlarging_cover_keeps_the_aspect_ratio_of_a_tiny_crop() -> None:
    # A 6x6 dark square in the middle of a 40x10 source, to 500x400: scale 40, a 12.5 px
    # wide crop. Cropping whole pixels (12) then forcing 500 px would stretch the square
    # to 250x240; the sub-pixel window keeps it 240x240.
    white = (pyvips.Image.black(40, 10, bands=3) + 255).cast("uchar")
    square = pyvips.Image.black(6, 6, bands=3).cast("uchar")
    image = white.insert(square, 17, 2).copy(interpretation="srgb")
    thumb = _render(samples.encode(image, ".png"), sizes=(SizeSpec("t", 500, 400),),
                    fit=FitMode.COVER, format=OutputFormat.PNG)[0]
    dark = samples.decode(thumb.data)[0] < 128
    columns, rows = dark.project()  # dark pixels per column and per row
    width = sum(1 for x in range(columns.width) if columns(x, 0)[0] > 0)
    height = sum(1 for y in range(rows.height) if rows(0, y)[0] > 0)
    assert abs(width - 240) <= 2 and abs(height - 240) <= 2, (width, height)


def test_enlarging_cover_keeps_alpha() -> None:
    image = samples.with_alpha(samples.canvas(30, 10), alpha=0)
    thumb = _render(samples.encode(image, ".png"), sizes=(SizeSpec("t", 300, 300),),
                    fit=FitMode.COVER)[0]
    out = _check(thumb)
    assert out.bands == 4 and out[3].max() == 0  # still fully transparent
