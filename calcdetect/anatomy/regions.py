"""The one registry of regions and anatomical structures.

Everything else (anatomy maps, phantom truth, CNN class maps, classification, report
wording, DICOM codes) looks regions and structures up here; nothing else hard-codes
label numbers or code values.

* ``Region`` is what a finding is reported under (the findings.json ``region``).
* ``Structure`` is one labelled anatomical structure of an ``AnatomyMap``; each
  belongs to a region (or to none, for bone and organs that only give context).

SNOMED CT codes are those of DICOM PS3.16 (CID 4030 / CID 6204); ``None`` where
no code has been checked against PS3.16 yet, never a guessed one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "Region",
    "RegionInfo",
    "REGIONS",
    "Structure",
    "STRUCTURES",
    "VERTEBRA_LEVELS",
    "structure",
    "structure_by_label",
    "vertebra_label",
    "level_of_label",
    "level_index",
    "format_level_span",
]


class Region(str, enum.Enum):
    AORTA = "aorta"
    ILIAC = "iliac"
    LIGAMENTUM_FLAVUM = "ligamentum_flavum"
    RENAL = "renal"
    OTHER = "other"


@dataclass(frozen=True)
class RegionInfo:
    region: Region
    snomed: str | None
    display: str
    # Report wording: the noun phrase used in Findings lines and the negative
    # sentence when the region is in the field of view and clear of calcium.
    report_name: str
    negative: str
    not_in_fov: str
    # When the levels say the region is in view but the anatomy stage did not
    # find it: a negative sentence would claim what was never looked at.
    not_found: str = ""


REGIONS: dict[Region, RegionInfo] = {
    Region.AORTA: RegionInfo(
        Region.AORTA, "15825003", "Aorta", "abdominal aorta",
        "No calcification of the abdominal aorta.",
        "The abdominal aorta is not included in the field of view.",
        "The abdominal aorta was not identified; aortic calcification was not assessed.",
    ),
    Region.ILIAC: RegionInfo(
        Region.ILIAC, None, "Iliac artery", "iliac arteries",
        "No calcification of the iliac arteries.",
        "The iliac arteries are not included in the field of view.",
        "The iliac arteries were not identified; iliac calcification was not assessed.",
    ),
    Region.LIGAMENTUM_FLAVUM: RegionInfo(
        Region.LIGAMENTUM_FLAVUM, None, "Ligamentum flavum", "ligamentum flavum",
        "No calcification of the ligamentum flavum.",
        "The posterior spinal canal is not included in the field of view.",
    ),
    Region.RENAL: RegionInfo(
        Region.RENAL, "64033007", "Kidney", "kidneys",
        "No renal calculi or nephrocalcinosis.",
        "The kidneys are not included in the field of view.",
        "The kidneys were not identified; renal calcification was not assessed.",
    ),
    Region.OTHER: RegionInfo(
        Region.OTHER, None, "Other", "other", "", "",
    ),
}


# Vertebral levels in cranio-caudal order; "S1" stands for the sacrum.
VERTEBRA_LEVELS: tuple[str, ...] = (
    tuple(f"C{n}" for n in range(1, 8))
    + tuple(f"T{n}" for n in range(1, 13))
    + tuple(f"L{n}" for n in range(1, 6))
    + ("S1",)
)



@dataclass(frozen=True)
class Structure:
    label: int
    name: str  # TotalSegmentator-style name where one exists
    region: Region | None  # None: context only (bone, organs)
    side: str | None = None
    segment: str | None = None
    is_bone: bool = False
    snomed: str | None = None


def _vertebrae() -> list[Structure]:
    out = []
    for n, level in enumerate(VERTEBRA_LEVELS, start=1):
        name = "sacrum" if level == "S1" else f"vertebrae_{level}"
        out.append(Structure(n, name, None, is_bone=True))
    return out


# Labels 1..25 are the vertebrae C1..L5 and the sacrum, in VERTEBRA_LEVELS order.
STRUCTURES: tuple[Structure, ...] = tuple(
    _vertebrae()
    + [
        Structure(30, "spinal_canal", None),
        Structure(31, "ligamentum_flavum_zone", Region.LIGAMENTUM_FLAVUM),
        Structure(32, "intervertebral_disc", None),
        # The column when levels cannot be assigned (no sacrum or rib anchor in view):
        # still bone, so specks on it are not reported as calcification.
        Structure(33, "vertebrae_unlabelled", None, is_bone=True),
        Structure(40, "aorta", Region.AORTA, snomed="15825003"),
        Structure(41, "common_iliac_artery_left", Region.ILIAC, "left", "common"),
        Structure(42, "common_iliac_artery_right", Region.ILIAC, "right", "common"),
        Structure(43, "external_iliac_artery_left", Region.ILIAC, "left", "external"),
        Structure(44, "external_iliac_artery_right", Region.ILIAC, "right", "external"),
        Structure(45, "internal_iliac_artery_left", Region.ILIAC, "left", "internal"),
        Structure(46, "internal_iliac_artery_right", Region.ILIAC, "right", "internal"),
        Structure(50, "kidney_left", Region.RENAL, "left", "cortex", snomed="64033007"),
        Structure(51, "kidney_right", Region.RENAL, "right", "cortex", snomed="64033007"),
        Structure(52, "kidney_medulla_left", Region.RENAL, "left", "medulla"),
        Structure(53, "kidney_medulla_right", Region.RENAL, "right", "medulla"),
        Structure(54, "collecting_system_left", Region.RENAL, "left", "collecting_system"),
        Structure(55, "collecting_system_right", Region.RENAL, "right", "collecting_system"),
        Structure(56, "ureter_left", Region.RENAL, "left", "ureter"),
        Structure(57, "ureter_right", Region.RENAL, "right", "ureter"),
        Structure(60, "ribs", None, is_bone=True),
        Structure(61, "hip_bones", None, is_bone=True),
        Structure(62, "femur", None, is_bone=True),
        Structure(63, "costal_cartilage", None),
        Structure(70, "inferior_vena_cava", None, snomed="64131007"),
        Structure(71, "iliac_vein_left", None, "left"),
        Structure(72, "iliac_vein_right", None, "right"),
        Structure(80, "liver", None, snomed="10200004"),
        Structure(81, "spleen", None, snomed="78961009"),
        Structure(82, "bowel", None),
        Structure(83, "psoas_left", None, "left"),
        Structure(84, "psoas_right", None, "right"),
        Structure(85, "body", None),
        Structure(86, "lung", None, snomed="39607008"),
    ]
)

_BY_NAME = {s.name: s for s in STRUCTURES}
_BY_LABEL = {s.label: s for s in STRUCTURES}


def structure(name: str) -> Structure:
    """Look a structure up by name; the error lists the valid names."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(
            f"unknown structure {name!r}; known structures: {', '.join(sorted(_BY_NAME))}"
        ) from None


def structure_by_label(label: int) -> Structure | None:
    return _BY_LABEL.get(int(label))


def vertebra_label(level: str) -> int:
    """Label id of a vertebra (``"L3"`` -> 22); ``"S1"`` is the sacrum."""
    return VERTEBRA_LEVELS.index(level) + 1


def level_of_label(label: int) -> str | None:
    """Vertebral level of a vertebra label id, or ``None`` for other labels."""
    return VERTEBRA_LEVELS[label - 1] if 1 <= label <= len(VERTEBRA_LEVELS) else None


def level_index(level: str) -> float:
    """Cranio-caudal position of a level; a disc ``"L3-L4"`` sits half-way."""
    parts = level.split("-")
    return sum(VERTEBRA_LEVELS.index(p) for p in parts) / len(parts)


def format_level_span(levels: list[str]) -> str | None:
    """``["L2", "L3", "L2-L3", "L4"]`` -> ``"L2-L4"``; one level -> itself."""
    names = [p for lv in levels if lv for p in lv.split("-")]
    if not names:
        return None
    idx = sorted({VERTEBRA_LEVELS.index(n) for n in names})
    lo, hi = VERTEBRA_LEVELS[idx[0]], VERTEBRA_LEVELS[idx[-1]]
    return lo if lo == hi else f"{lo}-{hi}"
