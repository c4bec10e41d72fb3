"""The render child's reply is untrusted: its placeholder must look like a ThumbHash."""

from __future__ import annotations

from typing import Any

import pytest

from thumbnail_service.imaging import FitMode, OutputFormat, RenderOptions, SizeSpec
from thumbnail_service.rendering.wire import options_from_json, options_to_json, thumbnail_metas

OPTIONS = RenderOptions((SizeSpec("small", 64, 64),))


def reply(placeholder: Any) -> dict[str, Any]:
    return {"thumbnails": [{"name": "small", "width": 64, "height": 40, "format": "jpeg",
                            "content_type": "image/jpeg", "bytes": 10,
                            "placeholder": placeholder}]}


@pytest.mark.parametrize("value", [None, "HwgOBZpwd4dwiHh4eHh4iIX4CPd3",
                                   "ZGmFOw4JcHB4eHdzfweHh3h4Bwd3h3A="])
def test_a_thumbhash_or_none_passes(value: Any) -> None:
    assert thumbnail_metas(reply(value), OPTIONS)[0]["placeholder"] == value


@pytest.mark.parametrize("value", ["", "x" * 80, "<script>", 42, ["a"]])
def test_anything_else_is_a_malformed_reply(value: Any) -> None:
    with pytest.raises(ValueError, match="placeholder"):
        thumbnail_metas(reply(value), OPTIONS)


def test_render_options_cross_the_boundary_whole() -> None:
    options = RenderOptions((SizeSpec("r", 30, 20),), FitMode.SMART, OutputFormat.AUTO, 55,
                            accept=frozenset({OutputFormat.AVIF}), placeholder=False)
    assert options_from_json(options_to_json(options)) == options
