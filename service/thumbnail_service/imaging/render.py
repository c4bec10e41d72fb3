"""Multi-size rendering: decode once (shrink-on-load for the largest size), derive the rest."""

from __future__ import annotations

import pyvips

from .deadline import Deadline
from .encode import encode, resolve_format, to_srgb
from .errors import CorruptImageError, ImageTooLargeError, ImagingError, ProcessingTimeoutError
from .geometry import (
    Plan,
    cover_scale,
    cover_window,
    crop_size,
    fit_inside,
    jpeg_shrink,
    plan_decode,
)
from .models import (
    CONTENT_TYPES,
    FitMode,
    ImageFormat,
    ImageInfo,
    OutputFormat,
    RenderOptions,
    SizeSpec,
    Thumbnail,
)
from .placeholder import placeholder
from .probe import loadable, open_header

_CROPS = {FitMode.COVER: "centre", FitMode.SMART: "attention"}
_PLAIN = frozenset({"srgb", "b-w"})  # interpretations _scale_to may resize directly


def render(
    data: bytes,
    options: RenderOptions,
    *,
    allowed: frozenset[ImageFormat],
    max_pixels: int,
    timeout_seconds: float,
) -> list[Thumbnail]:
    """Thumbnails for every size in `options`, in order; raises ImagingError subclasses."""
    with Deadline(timeout_seconds) as deadline:
        return _render(loadable(data), options, allowed, max_pixels, deadline)


def _render(
    data: bytes,
    options: RenderOptions,
    allowed: frozenset[ImageFormat],
    max_pixels: int,
    deadline: Deadline,
) -> list[Thumbnail]:
    _, info = open_header(data, allowed=allowed, max_pixels=max_pixels)
    for spec in options.sizes:  # COVER/SMART upscale: bound what we may be asked to allocate
        if spec.width * spec.height > max_pixels:
            raise ImageTooLargeError(f"size {spec.name!r} exceeds {max_pixels} pixels")
    deadline.check()
    plan = plan_decode(info.width, info.height, options.sizes, options.fit)
    if len(options.sizes) == 1 and options.fit is FitMode.INSIDE:
        return [_render_streamed(data, options, info, plan, deadline)]
    with deadline.guard(CorruptImageError, f"decoding {info.format}"):
        image = _decode(data, info, plan)
        deadline.watch(image)
        base = image.copy_memory()
    thumbnails = []
    smallest = min(options.sizes, key=lambda s: s.width * s.height)
    for spec in options.sizes:
        deadline.check()
        with deadline.guard(ImagingError, f"resizing to {spec.name!r}"):  # e.g. out of memory
            image = _derive(base, spec, options.fit, info)
            if spec is smallest:  # computed once, for its encoder and the placeholder
                deadline.watch(image)
                image = image.copy_memory()
        fmt = resolve_format(options.format, info.format, base.hasalpha(), options.accept)
        deadline.watch(image)
        with deadline.guard(ImagingError, f"encoding {spec.name!r} as {fmt}"):
            payload = encode(image, fmt, options.quality)
        hashed = _placeholder(image) if options.placeholder and spec is smallest else None
        thumbnails.append(_thumbnail(spec, fmt, payload, image, hashed))
    return thumbnails


def _render_streamed(
    data: bytes, options: RenderOptions, info: ImageInfo, plan: Plan, deadline: Deadline
) -> Thumbnail:
    """One INSIDE size: the decode pipeline already is the thumbnail, so it streams straight
    into the encoder (no in-memory copy of the decoded image, no second resize)."""
    spec = options.sizes[0]
    with deadline.guard(CorruptImageError, f"decoding {info.format}"):
        image = _decode(data, info, plan)  # lazy: only the header has been read
        if (image.width, image.height) != fit_inside(
            info.width, info.height, spec.width, spec.height
        ):
            image = _derive(image, spec, options.fit, info)  # libvips' rounding differed
    fmt = resolve_format(options.format, info.format, image.hasalpha(), options.accept)
    deadline.watch(image)
    try:
        with deadline.guard(ImagingError, f"decoding {info.format} and encoding as {fmt}"):
            # Decoded straight to its (small) size, once: the encoder and the placeholder
            # read it from memory.
            image = image.copy_memory()
            payload = encode(image, fmt, options.quality)
    except ProcessingTimeoutError:
        raise
    except ImagingError:
        # Decoder and encoder ran as one pipeline: report a bad input as corrupt.
        with deadline.guard(CorruptImageError, f"decoding {info.format}"):
            image = _decode(data, info, plan)
            deadline.watch(image)
            image.copy_memory()
        raise
    hashed = _placeholder(image) if options.placeholder else None
    return _thumbnail(spec, fmt, payload, image, hashed)


def _placeholder(image: pyvips.Image) -> str | None:
    """A nicety: a job renders without it rather than fail for it."""
    try:
        return placeholder(image)
    except (pyvips.Error, ValueError):
        return None


def _decode(data: bytes, info: ImageInfo, plan: Plan) -> pyvips.Image:
    """Decode, shrink, auto-rotate and convert to sRGB in one (lazy) pipeline."""
    if info.format is ImageFormat.JPEG:
        image = _load_jpeg(data, info, plan)
    else:  # libvips picks the format's own shrink-on-load (WebP scale, HEIF thumbs...)
        # thumbnail_buffer's own fail_on does not reach every loader (a truncated PNG
        # decodes as grey in libvips 8.18); the loader option string does.
        image = pyvips.Image.thumbnail_buffer(
            data,
            plan.box_width,
            height=plan.box_height,
            size="down",
            option_string="fail_on=error",
        )
    return to_srgb(image)


def _load_jpeg(data: bytes, info: ImageInfo, plan: Plan) -> pyvips.Image:
    # thumbnail_buffer would keep a 2x margin in its DCT shrink; we take the largest
    # shrink that still covers the biggest output (same idea as Pillow's draft()).
    need_w, need_h = plan.need_width, plan.need_height
    stored_w, stored_h = info.width, info.height
    if info.orientation >= 5:  # plan is in display orientation, the JPEG is stored rotated
        need_w, need_h, stored_w, stored_h = need_h, need_w, stored_h, stored_w
    shrink = jpeg_shrink(stored_w, stored_h, need_w, need_h)
    loaded = pyvips.Image.jpegload_buffer(data, shrink=shrink, access="sequential", fail_on="error")
    # The shrunk size is floored (7 px / 4 -> 1 px), which bends the aspect ratio of small
    # images: size from the original geometry and force both axes to it. thumbnail_image
    # also applies (and then drops) the EXIF orientation.
    width, height = fit_inside(info.width, info.height, plan.box_width, plan.box_height)
    if info.orientation == 1:
        return _scale_to(loaded, width, height)
    return loaded.thumbnail_image(width, height=height, size="force")


def _derive(base: pyvips.Image, spec: SizeSpec, fit: FitMode, info: ImageInfo) -> pyvips.Image:
    if fit is FitMode.INSIDE:
        # Size from the original geometry, not from `base`, whose dimensions were rounded:
        # a 13x3 original decoded to 6x1 must still give 4x1, not 6x1, for a 6x1 box.
        width, height = fit_inside(info.width, info.height, spec.width, spec.height)
        return _scale_to(base, width, height)
    if cover_scale(base.width, base.height, spec.width, spec.height) <= 1.0:
        # Shrinking: libvips scales the whole of `base` down, then crops; nothing it builds
        # is larger than `base`.
        return base.thumbnail_image(
            spec.width, height=spec.height, size="both", crop=_CROPS[fit], no_rotate=True
        )
    return _cover_upscaled(base, spec, fit)


def _cover_upscaled(base: pyvips.Image, spec: SizeSpec, fit: FitMode) -> pyvips.Image:
    """COVER/SMART that must enlarge: crop first, then scale only what is kept.

    thumbnail_image would scale all of `base` to cover the box and crop afterwards: an
    8000x10 strip to a 1024 px square became a 819200x1024 intermediate (15-30 s, past the
    time limit). Here the affine transform's output area *is* the box, so libvips computes
    exactly box-many pixels, from the source region `cover_window` names. The transform is
    the one vips_resize uses to enlarge (bicubic, centre convention: idx = idy = 0.5), so
    pixels match a resize-then-crop; the window is placed to the sub-pixel, so the aspect
    ratio is exact however small the source region.
    """
    centre = None
    if fit is FitMode.SMART:  # the interesting part, found at source resolution
        crop_w, crop_h = crop_size(base.width, base.height, spec.width, spec.height)
        _, found = base.smartcrop(
            crop_w, crop_h, interesting="attention", attention_x=True, attention_y=True
        )
        centre = (float(found["attention_x"]), float(found["attention_y"]))
    window = cover_window(base.width, base.height, spec.width, spec.height, centre)
    alpha = bool(base.hasalpha())
    image = base.premultiply() if alpha else base
    scaled = image.affine(
        [window.scale, 0.0, 0.0, window.scale],
        oarea=[0, 0, spec.width, spec.height],
        idx=0.5,
        idy=0.5,
        odx=-window.left,
        ody=-window.top,
        interpolate=pyvips.Interpolate.new("bicubic"),
        extend="copy",
        premultiplied=alpha,
    )
    if alpha:
        scaled = scaled.unpremultiply()
    return scaled.cast(base.format)


def _scale_to(image: pyvips.Image, width: int, height: int) -> pyvips.Image:
    """thumbnail_image(width, height, size="force", no_rotate=True), cheaper when it can be.

    For opaque sRGB or grey pixels that is one Lanczos-3 resize, identical pixels, and
    building it takes 0.06 ms instead of thumbnail's 0.6 ms (per size, per job).
    Alpha (premultiplied resize) and other colour spaces keep thumbnail's handling.
    """
    if image.hasalpha() or image.interpretation not in _PLAIN or image.format != "uchar":
        return image.thumbnail_image(width, height=height, size="force", no_rotate=True)
    if (image.width, image.height) == (width, height):
        return image
    return image.resize(width / image.width, vscale=height / image.height, kernel="lanczos3")


def _thumbnail(
    spec: SizeSpec, fmt: OutputFormat, payload: bytes, image: pyvips.Image,
    placeholder: str | None,
) -> Thumbnail:
    return Thumbnail(
        name=spec.name,
        width=image.width,
        height=image.height,
        format=fmt,
        content_type=CONTENT_TYPES[fmt],
        data=payload,
        placeholder=placeholder,
    )
