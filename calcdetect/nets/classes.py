"""The CNN class maps, derived from the structure registry in one place.

Every network output channel is named by a ``Structure`` name from
:mod:`calcdetect.anatomy.regions`; label ids are never written here, they are
looked up. Channel 0 is always background.

Design choice: one class per vertebra (C1..L5 and the sacrum), as in
TotalSegmentator, rather than one "vertebra" class plus a separate level
regression. The registry already gives each vertebra its own label, so the class
map is the identity for the spine, the per-slice level falls out of the argmax
without a second head, and public datasets (TotalSegmentator, VerSe) are labelled
per vertebra. The cost is only output channels (a 1x1x1 convolution). Levels a
training set does not contain are simply never predicted; partially labelled
datasets are handled by the marginal loss in :mod:`calcdetect.training.losses`.

Structures the CNN does not segment are either merged into a parent class
(kidney medulla -> kidney) or treated as background (ribs, liver, ...).

A second, coarse class set (:data:`COARSE_ANATOMY_CLASSES`, 12 channels) is what
the shipped phantom model is trained on: the vertebral column is one class
(``vertebrae_unlabelled``) with the sacrum and the discs as their own classes,
so the levels are *counted* from the sacrum (:mod:`calcdetect.nets.levels`)
instead of being learnt per vertebra; iliac segments fold into the common iliac
artery of their side, the medulla into the kidney. Which structure folds into
which class is the :data:`PARENT` table: a structure that is not itself a class
of a class set takes its parent's class (recursively), else background. The
class set a model was trained with travels in its ``ModelSpec.classes``.
"""

from __future__ import annotations

import numpy as np

from calcdetect.anatomy.regions import STRUCTURES, VERTEBRA_LEVELS, structure

__all__ = [
    "ANATOMY_CLASSES",
    "COARSE_ANATOMY_CLASSES",
    "CLASS_SETS",
    "PARENT",
    "class_set",
    "class_remap_lut",
    "RADIOGRAPH_CLASSES",
    "REFINER_CLASSES",
    "MERGED_STRUCTURES",
    "class_index",
    "class_to_label_lut",
    "label_to_class_lut",
    "labels_to_classes",
    "classes_to_labels",
]

BACKGROUND = "background"

_VERTEBRAE: tuple[str, ...] = tuple(
    "sacrum" if lv == "S1" else f"vertebrae_{lv}" for lv in VERTEBRA_LEVELS
)

#: Output channels of the anatomy CNN: background, then Structure names.
ANATOMY_CLASSES: tuple[str, ...] = (
    (BACKGROUND,)
    + _VERTEBRAE
    + (
        "spinal_canal",
        "ligamentum_flavum_zone",
        "intervertebral_disc",
        "aorta",
        "common_iliac_artery_left",
        "common_iliac_artery_right",
        "external_iliac_artery_left",
        "external_iliac_artery_right",
        "internal_iliac_artery_left",
        "internal_iliac_artery_right",
        "kidney_left",
        "kidney_right",
        "collecting_system_left",
        "collecting_system_right",
    )
)

#: Registry structures that are folded into a CNN class (child -> class name).
MERGED_STRUCTURES: dict[str, str] = {
    "kidney_medulla_left": "kidney_left",
    "kidney_medulla_right": "kidney_right",
}

#: The coarse anatomy class set (see the module docstring).
COARSE_ANATOMY_CLASSES: tuple[str, ...] = (
    BACKGROUND,
    "vertebrae_unlabelled",
    "sacrum",
    "intervertebral_disc",
    "spinal_canal",
    "aorta",
    "common_iliac_artery_left",
    "common_iliac_artery_right",
    "kidney_left",
    "kidney_right",
    "collecting_system_left",
    "collecting_system_right",
)

#: Named class sets (``TrainConfig.classes``).
CLASS_SETS: dict[str, tuple[str, ...]] = {"anatomy": ANATOMY_CLASSES, "coarse": COARSE_ANATOMY_CLASSES}

#: Structure -> the coarser structure it folds into when it is not a class itself.
PARENT: dict[str, str] = {
    **{name: "vertebrae_unlabelled" for name in _VERTEBRAE if name != "sacrum"},
    "kidney_medulla_left": "kidney_left",
    "kidney_medulla_right": "kidney_right",
    "external_iliac_artery_left": "common_iliac_artery_left",
    "internal_iliac_artery_left": "common_iliac_artery_left",
    "external_iliac_artery_right": "common_iliac_artery_right",
    "internal_iliac_artery_right": "common_iliac_artery_right",
}


def class_set(name_or_classes: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """A class set by name (``"anatomy"``, ``"coarse"``) or as an explicit list."""
    if isinstance(name_or_classes, str):
        try:
            return CLASS_SETS[name_or_classes]
        except KeyError:
            raise KeyError(f"unknown class set {name_or_classes!r}; use one of {', '.join(CLASS_SETS)}") from None
    classes = tuple(str(c) for c in name_or_classes)
    if not classes or classes[0] != BACKGROUND or len(set(classes)) != len(classes):
        raise ValueError(f"a class list starts with {BACKGROUND!r} and names each class once, got {classes}")
    for name in classes[1:]:
        structure(name)
    return classes


def _class_of(name: str, classes: tuple[str, ...]) -> int:
    """Channel of a structure in a class set, following :data:`PARENT`; 0 if none."""
    name = MERGED_STRUCTURES.get(name, name) if name not in classes else name
    while name not in classes:
        if name not in PARENT:
            return 0
        name = PARENT[name]
    return classes.index(name)


def class_remap_lut(src: tuple[str, ...], dst: tuple[str, ...]) -> np.ndarray:
    """``lut[c]`` is the ``dst`` channel of ``src`` channel ``c`` (uint8, 256 entries; 255 stays 255).

    >>> lut = class_remap_lut(ANATOMY_CLASSES, COARSE_ANATOMY_CLASSES)
    >>> COARSE_ANATOMY_CLASSES[lut[ANATOMY_CLASSES.index("vertebrae_L3")]]
    'vertebrae_unlabelled'
    """
    lut = np.zeros(256, dtype=np.uint8)
    for c, name in enumerate(src):
        lut[c] = 0 if name == BACKGROUND else _class_of(name, dst)
    lut[255] = 255
    return lut


#: Output channels of the candidate refiner (a patch classifier).
REFINER_CLASSES: tuple[str, ...] = ("lookalike", "calcification")

#: Output channels of the 2-D radiograph network (lateral lumbar view, AAC-24
#: scoring needs the L1-L4 bodies and the aortic calcification in front of them).
RADIOGRAPH_CLASSES: tuple[str, ...] = (
    BACKGROUND,
    "vertebrae_L1",
    "vertebrae_L2",
    "vertebrae_L3",
    "vertebrae_L4",
    "aortic_calcification",
)


def _check_registry() -> None:
    for name in ANATOMY_CLASSES[1:]:
        structure(name)  # raises with the list of valid names
    for child, parent in MERGED_STRUCTURES.items():
        structure(child)
        if parent not in ANATOMY_CLASSES:
            raise ValueError(f"merge target {parent!r} is not an anatomy class")
    for name in COARSE_ANATOMY_CLASSES[1:]:
        structure(name)
    for child, parent in PARENT.items():
        structure(child), structure(parent)


_check_registry()


def class_index(name: str, classes: tuple[str, ...] = ANATOMY_CLASSES) -> int:
    """Channel index of a class name; the error lists the valid names."""
    try:
        return classes.index(name)
    except ValueError:
        raise KeyError(f"unknown class {name!r}; classes: {', '.join(classes)}") from None


def class_to_label_lut(classes: tuple[str, ...] = ANATOMY_CLASSES) -> np.ndarray:
    """``lut[c]`` is the Structure label id of channel ``c`` (0 for background).

    Returns
    -------
    numpy.ndarray
        uint8 array of length ``len(classes)``.
    """
    lut = np.zeros(len(classes), dtype=np.uint8)
    for c, name in enumerate(classes):
        if name != BACKGROUND:
            lut[c] = structure(name).label
    return lut


def label_to_class_lut(classes: tuple[str, ...] = ANATOMY_CLASSES) -> np.ndarray:
    """``lut[label]`` is the class channel of a Structure label id (256 entries).

    Merged structures map to their parent class (:data:`MERGED_STRUCTURES`,
    :data:`PARENT`); every other structure that is not a class maps to
    background (0).
    """
    lut = np.zeros(256, dtype=np.uint8)
    for s in STRUCTURES:
        lut[s.label] = _class_of(s.name, classes)
    return lut


def _index(a: np.ndarray) -> np.ndarray:
    """An index array for a LUT gather: small unsigned ints as they are (no 8-byte copy of a CT-sized map)."""
    return a if a.dtype in (np.uint8, np.uint16) else a.astype(np.intp, copy=False)


def labels_to_classes(labels: np.ndarray, classes: tuple[str, ...] = ANATOMY_CLASSES) -> np.ndarray:
    """Structure label ids -> class channels (uint8), see :func:`label_to_class_lut`.

    >>> import numpy as np
    >>> from calcdetect.anatomy.regions import structure
    >>> int(labels_to_classes(np.array([structure("aorta").label]))[0]) == class_index("aorta")
    True
    """
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise ValueError(f"structure labels must lie in 0..255, got {labels.min()}..{labels.max()}")
    return label_to_class_lut(classes)[_index(labels)]


def classes_to_labels(classes_map: np.ndarray, classes: tuple[str, ...] = ANATOMY_CLASSES) -> np.ndarray:
    """Class channels -> Structure label ids (uint8)."""
    lut = class_to_label_lut(classes)
    classes_map = np.asarray(classes_map)
    if classes_map.size and classes_map.max() >= len(lut):
        raise ValueError(f"class index {int(classes_map.max())} out of range for {len(lut)} classes")
    return lut[_index(classes_map)]
