"""The render child's reply is untrusted: its placeholder must look like a ThumbHash."""

from __future__ import annotations

from typing import Any

import pytest

from thumbnail_service.imaging import RenderOptions, SizeSpec
from thumbnail_service.rendering.wire import thumbnail_metas

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
