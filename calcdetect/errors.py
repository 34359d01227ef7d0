"""calcdetect's typed errors.

Every error a user can meet says what was wrong, where, and what to do next
(the pydicom / highdicom convention). The CLI turns them into one clear line and
an exit code; no raw traceback reaches the user.
"""

from __future__ import annotations

__all__ = [
    "CalcdetectError",
    "InputError",
    "NotDicomError",
    "UnsupportedSeriesError",
    "DecoderMissingError",
    "DecodeError",
    "MemoryBudgetError",
    "GeometryError",
    "DuplicateSlicesError",
    "MissingSlicesError",
    "NonUniformSpacingError",
    "MixedOrientationError",
    "GantryTiltError",
    "TooFewSlicesError",
    "DeviceError",
    "ConfigError",
]


class CalcdetectError(Exception):
    """Base class: a problem with the input or settings, explained for the user."""


class InputError(CalcdetectError):
    """The input path or file cannot be used (missing, unreadable, wrong type)."""


class NotDicomError(InputError):
    """A file is not DICOM (or is empty / truncated before the dataset)."""


class UnsupportedSeriesError(CalcdetectError):
    """A series is valid DICOM but not something calcdetect analyses."""


class DecoderMissingError(CalcdetectError):
    """Pixel data is compressed with a transfer syntax no installed plugin decodes."""


class DecodeError(CalcdetectError):
    """Pixel data could not be decoded (corrupt stream, inconsistent header)."""


class MemoryBudgetError(CalcdetectError):
    """Decoding would allocate more than the configured memory budget."""


class GeometryError(CalcdetectError):
    """Slices do not form a regular volume."""


class DuplicateSlicesError(GeometryError):
    pass


class MissingSlicesError(GeometryError):
    pass


class NonUniformSpacingError(GeometryError):
    pass


class MixedOrientationError(GeometryError):
    pass


class GantryTiltError(GeometryError):
    pass


class TooFewSlicesError(GeometryError):
    pass


class DeviceError(CalcdetectError):
    """The requested compute device is not available."""


class ConfigError(CalcdetectError):
    """A configuration file or option is invalid."""
