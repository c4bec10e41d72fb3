"""Option parsing, settings and small pure helpers (no servers)."""

from __future__ import annotations

import pytest

from thumbnail_service.api.errors import ApiError
from thumbnail_service.api.numbers import parse_ascii_int
from thumbnail_service.api.upload import fingerprint, parse_options
from thumbnail_service.imaging import FitMode, ImageFormat, OutputFormat
from thumbnail_service.settings import Settings
from thumbnail_service.worker.processor import retry_delay_seconds


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in ("THUMBNAIL_PRESETS", "THUMBNAIL_API_KEYS", "THUMBNAIL_ALLOWED_FORMATS"):
        monkeypatch.delenv(name, raising=False)
    return Settings()


def test_defaults_use_every_preset(settings: Settings) -> None:
    options = parse_options({}, settings)
    assert [s.name for s in options.sizes] == ["small", "medium", "large"]
    assert (options.fit, options.format, options.quality) == (FitMode.INSIDE, OutputFormat.AUTO, 80)


def test_sizes_mix_presets_dimensions_and_names(settings: Settings) -> None:
    options = parse_options(
        {"sizes": ["small, 300x200", "banner=1200x400"], "fit": ["COVER"], "quality": ["55"]},
        settings,
    )
    assert [(s.name, s.width, s.height) for s in options.sizes] == [
        ("small", 128, 128),
        ("300x200", 300, 200),
        ("banner", 1200, 400),
    ]
    assert options.fit is FitMode.COVER and options.quality == 55


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"fit": ["a", "b"]}, "fit"), ({"quality": [" "]}, "quality"), ({"sizes": ["1x"]}, "sizes")],
)
def test_invalid_options_name_their_field(
    settings: Settings, fields: dict[str, list[str]], field: str
) -> None:
    with pytest.raises(ApiError) as info:
        parse_options(fields, settings)
    assert info.value.status == 422 and info.value.field == field


def test_fingerprint_depends_on_bytes_and_options(settings: Settings) -> None:
    a = parse_options({"sizes": ["small"]}, settings)
    b = parse_options({"sizes": ["medium"]}, settings)
    assert fingerprint(b"x", a) == fingerprint(b"x", a)
    assert fingerprint(b"x", a) != fingerprint(b"y", a) != fingerprint(b"x", b)


def test_settings_parse_env_formats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THUMBNAIL_API_KEYS", " k1 ,k2,")
    monkeypatch.setenv("THUMBNAIL_ALLOWED_FORMATS", "JPEG,png")
    monkeypatch.setenv("THUMBNAIL_PRESETS", '{"tiny": {"width": 16, "height": 16}}')
    monkeypatch.setenv("THUMBNAIL_DATABASE_PASSWORD", "hunter2")
    monkeypatch.setenv("THUMBNAIL_LOG_LEVEL", "debug")
    settings = Settings()
    assert [k.get_secret_value() for k in settings.api_keys] == ["k1", "k2"]
    assert settings.allowed_format_set == {ImageFormat.JPEG, ImageFormat.PNG}
    assert settings.presets["tiny"].width == 16 and settings.log_level == "DEBUG"
    redacted = settings.redacted()
    assert "hunter2" not in str(redacted) and "k1" not in str(redacted)
    assert redacted["database_password"] == "**********" and redacted["s3_secret_key"] == ""


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("THUMBNAIL_ALLOWED_FORMATS", "bmp"),
        ("THUMBNAIL_PRESETS", '{"bad name": {"width": 1, "height": 1}}'),
        ("THUMBNAIL_PRESETS", "not json"),
        ("THUMBNAIL_PORT", "0"),
    ],
)
def test_bad_settings_are_rejected(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError):
        Settings()


def test_retry_backoff_doubles_up_to_the_cap(settings: Settings) -> None:
    delays = [retry_delay_seconds(settings, n) for n in range(1, 12)]
    assert delays[0] == settings.retry_min_backoff_seconds
    assert delays[1] == 2 * delays[0]
    assert max(delays) == settings.retry_max_backoff_seconds


@pytest.mark.parametrize(
    ("text", "expected"),
    [("7", 7), ("080", 80), (" 12\t", 12), ("100", 100)],
)
def test_numbers_are_ascii_digits(text: str, expected: int) -> None:
    assert parse_ascii_int(text, minimum=1, maximum=100) == expected


@pytest.mark.parametrize(
    "text",
    [
        *("", " ", "²", "①", "٣", "\uff13"),  # empty, superscript, circled, Arabic, fullwidth
        *("+3", "-3", "3.0", "1_0", "0x10", "1e2"),  # what int() or pydantic would take
        *("0", "101", "9" * 19),  # out of range
    ],
)
def test_anything_else_is_not_a_number(text: str) -> None:
    with pytest.raises(ValueError):
        parse_ascii_int(text, minimum=1, maximum=100)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"quality": ["²"]}, "quality"),  # isdigit() but int() raised: a 500
        ({"quality": ["①"]}, "quality"),
        ({"quality": ["٣"]}, "quality"),  # int() took it as 3
        ({"sizes": ["\u0661\u0660x\u0661\u0660"]}, "sizes"),  # Arabic-Indic 10x10: \d took it
        ({"sizes": ["a\n=10x10"]}, "sizes"),  # re.match's $ let the newline into the name
    ],
)
def test_non_ascii_numbers_and_names_are_invalid_options(
    settings: Settings, fields: dict[str, list[str]], field: str
) -> None:
    with pytest.raises(ApiError) as info:
        parse_options(fields, settings)
    assert info.value.status == 422 and info.value.field == field
