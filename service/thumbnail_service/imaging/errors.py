"""Errors the engine raises; the API and the worker map each class to one outcome."""


class ImagingError(Exception):
    """Base class of every error raised by thumbnail_service.imaging."""


class UnsupportedFormatError(ImagingError):
    """Not an image, or a format that is not allowed (API: 415)."""


class ImageTooLargeError(ImagingError):
    """Declared pixel count (or a requested output size) above the limit (API: 422)."""


class CorruptImageError(ImagingError):
    """Recognised format but truncated or malformed data: permanent, do not retry."""


class ProcessingTimeoutError(ImagingError):
    """The per-job time limit was hit; libvips work was killed, not just abandoned."""

