"""Pure parts of signed renditions: signatures, options, Accept negotiation, AUTO format."""

from __future__ import annotations

import pytest
import pyvips

from thumbnail_service.imaging import (
    FitMode,
    ImageFormat,
    OutputFormat,
    RenderOptions,
    SizeSpec,
    render,
)
from thumbnail_service.imaging.encode import resolve_format
from thumbnail_service.renditions.negotiation import accepted, decisive
from thumbnail_service.renditions.options import RenditionOptionError, parse_options
from thumbnail_service.renditions.signing import SigningPair, sign, signed_path, verify

# imgproxy's published example (examples/signature.*): the same key, salt, path, signature.
IMGPROXY = SigningPair.from_hex(
    "943b421c9eb07c830af81030552c86009268de4e532ba2ee2eab8247c6da0881",
    "520f986b998545b4785e0defbc4f3c1203f22de2374a3d53cb7a7fe9fea309c5",
)
IMGPROXY_PATH = "/fill/300/300/no/1/aHR0cDovL2ltZy5leGFtcGxlLmNvbS9wcmV0dHkvaW1hZ2UuanBn.png"
PRESETS = {"small": (128, 128), "wide": (640, 360)}


def parse(segment: str, presets_only: bool = False):  # type: ignore[no-untyped-def]
    return parse_options(segment, presets=PRESETS, presets_only=presets_only, max_dimension=4096)


def test_signatures_are_imgproxys() -> None:
    assert sign(IMGPROXY, IMGPROXY_PATH) == "_PQ4ytCQMMp-1w1m_vP6g8Qb-Q7yF9mwghf6PddqxLw"


def test_any_configured_pair_verifies_and_nothing_else_does() -> None:
    old, new = SigningPair(b"old", b"s1"), SigningPair(b"new", b"s2")
    path = signed_path(old, "w:10", "job")
    signature = path.split("/")[2]
    assert verify(signature, "/w:10/job", [new, old])
    assert not verify(signature, "/w:10/job", [new])
    assert not verify(signature, "/w:11/job", [new, old])
    assert not verify("", "/w:10/job", [new, old])


def test_options_in_any_order_are_one_rendition() -> None:
    a = parse("w:300,h:200,fit:cover,q:70,f:webp")
    b = parse("f:webp,q:70,fit:cover,h:200,w:300")
    assert a == b and a.canonical() == "w:300,h:200,fit:cover,f:webp,q:70"
    assert parse("preset:wide") == parse("w:640,h:360")


def test_defaults_and_an_omitted_side_with_inside() -> None:
    spec = parse("w:300")
    assert (spec.width, spec.height, spec.fit, spec.format, spec.quality) == (
        300, 4096, FitMode.INSIDE, OutputFormat.AUTO, 80)


@pytest.mark.parametrize(
    ("segment", "field"),
    [("", "options"), ("w", "options"), ("w:", "options"), ("x:1", "options"),
     ("w:1,w:1", "w"), ("w:0", "w"), ("w:4097", "w"), ("w:+5", "w"), ("w:٣", "w"),
     ("h:10,fit:smart", "w"), ("q:0,w:1", "q"), ("fit:fill,w:1", "fit"),
     ("f:gif,w:1", "f"), ("preset:small,w:1", "preset"), ("preset:big", "preset")],
)
def test_bad_options_name_their_field(segment: str, field: str) -> None:
    with pytest.raises(RenditionOptionError) as raised:
        parse(segment)
    assert raised.value.field == field


def test_presets_only_allows_presets_fit_and_format() -> None:
    assert parse("preset:small,fit:cover,f:avif", presets_only=True).width == 128
    for segment, field in (("w:10,h:10", "w"), ("preset:small,q:50", "q"), ("f:png", "preset")):
        with pytest.raises(RenditionOptionError) as raised:
            parse(segment, presets_only=True)
        assert raised.value.field == field


@pytest.mark.parametrize(
    ("header", "formats"),
    [("image/avif,image/webp,*/*;q=0.8", {"avif", "webp"}), ("IMAGE/WEBP", {"webp"}),
     ("image/avif;q=0, image/webp;q=0.5", {"webp"}), ("*/*", set()), (None, set()),
     ("image/avif;q=0.0", set()), ("image/webp;q=bogus", {"webp"})],
)
def test_accept_header(header: str | None, formats: set[str]) -> None:
    assert {f.value for f in accepted(header)} == formats


def test_only_the_winning_negotiable_format_keys_the_rendition() -> None:
    assert decisive(OutputFormat.AUTO, "image/avif,image/webp") == {OutputFormat.AVIF}
    assert decisive(OutputFormat.AUTO, "image/webp") == {OutputFormat.WEBP}
    assert decisive(OutputFormat.AUTO, "text/html") == frozenset()
    assert decisive(OutputFormat.PNG, "image/avif") == frozenset()  # explicit: no Vary


@pytest.mark.parametrize(
    ("accept", "source", "alpha", "chosen"),
    [({"avif", "webp"}, ImageFormat.JPEG, False, "avif"),
     ({"webp"}, ImageFormat.PNG, True, "webp"),
     (set(), ImageFormat.PNG, True, "png"),
     (set(), ImageFormat.GIF, False, "png"),
     (set(), ImageFormat.HEIF, True, "png"),
     (set(), ImageFormat.TIFF, False, "jpeg")],
)
def test_auto_format(accept: set[str], source: ImageFormat, alpha: bool, chosen: str) -> None:
    offered = frozenset(OutputFormat(f) for f in accept)
    assert resolve_format(OutputFormat.AUTO, source, alpha, offered) == OutputFormat(chosen)
    assert resolve_format(OutputFormat.JPEG, source, alpha, offered) is OutputFormat.JPEG


def test_a_rendition_skips_the_placeholder() -> None:
    data = pyvips.Image.black(64, 48).jpegsave_buffer()
    for sizes in ((SizeSpec("one", 32, 32),), (SizeSpec("a", 32, 32), SizeSpec("b", 16, 16))):
        for wanted in (True, False):
            thumbs = render(data, RenderOptions(sizes, placeholder=wanted),
                            allowed=frozenset(ImageFormat), max_pixels=10**6, timeout_seconds=10)
            assert any(t.placeholder for t in thumbs) is wanted
