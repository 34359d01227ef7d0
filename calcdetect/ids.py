"""Identifiers as hashes: output names and logs never carry patient data.

UIDs are hashed with SHA-256 under a fixed project salt so that the same series
always gets the same output key across runs (reproducible archives) while the UID
itself cannot be read back from file names.
"""

from __future__ import annotations

import hashlib

__all__ = ["hash_uid", "series_key"]

_SALT = b"calcdetect/v1:"


def hash_uid(uid: str | None) -> str | None:
    """Full hex SHA-256 of a salted UID (``None`` stays ``None``)."""
    if uid is None:
        return None
    return hashlib.sha256(_SALT + str(uid).strip().encode("ascii", "replace")).hexdigest()


def series_key(uid: str, extra: str = "") -> str:
    """Short output-folder key for a series (16 hex characters).

    ``extra`` distinguishes sub-series split from one Series Instance UID
    (e.g. different orientation or image size).
    """
    digest = hash_uid(uid + ("#" + extra if extra else ""))
    assert digest is not None
    return "s" + digest[:16]
