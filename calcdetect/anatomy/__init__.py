"""Anatomy: spine and levels, aorta and iliac arteries, kidneys, ligamentum flavum zone.

``build_anatomy`` is the stage's entry point (rules, optionally overridden by
TotalSegmentator masks); the region / structure registry lives in
:mod:`calcdetect.anatomy.regions`.

The public functions are imported lazily so that importing the light registry
(``calcdetect.anatomy.regions``) does not pull in scikit-image and nibabel.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_anatomy", "regions_in_fov", "regions_not_found", "load_totalsegmentator"]


def __getattr__(name: str) -> Any:
    if name in ("build_anatomy", "regions_in_fov", "regions_not_found"):
        from calcdetect.anatomy import build

        return getattr(build, name)
    if name == "load_totalsegmentator":
        from calcdetect.anatomy.external import load_totalsegmentator

        return load_totalsegmentator
    raise AttributeError(f"module 'calcdetect.anatomy' has no attribute {name!r}")
