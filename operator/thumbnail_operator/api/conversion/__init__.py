"""ThumbnailService v1alpha1 <-> v1: pure conversion, the ConversionReview webhook and its
certificates, and the stored-version migration that follows an upgrade."""

from thumbnail_operator.api.conversion.core import (
    V1,
    V1_EXTRAS,
    V1ALPHA1,
    V1ALPHA1_EXTRAS,
    convert,
    to_v1,
    to_v1alpha1,
)
from thumbnail_operator.api.conversion.mapping import ConversionError

__all__ = [
    "V1",
    "V1ALPHA1",
    "V1ALPHA1_EXTRAS",
    "V1_EXTRAS",
    "ConversionError",
    "convert",
    "to_v1",
    "to_v1alpha1",
]
