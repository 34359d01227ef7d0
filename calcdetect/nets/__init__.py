"""Network definitions, weights I/O and inference (see issue #5).

Public surface::

    ANATOMY_CLASSES, REFINER_CLASSES, RADIOGRAPH_CLASSES   class maps (from regions.py)
    NetConfig, build_anatomy_net, build_calcium_refiner, build_radiograph_net
    ModelSpec, save_model, load_model, read_spec, write_model_card
    segment_anatomy, extract_candidate_patches, score_candidates, refine_findings
    COARSE_ANATOMY_CLASSES, count_levels          coarse class set; levels counted from the sacrum
    fuse_anatomy, anatomy_with_model              rules + CNN anatomy
"""

from calcdetect.nets.builders import (
    NetConfig,
    build_anatomy_net,
    build_calcium_refiner,
    build_net,
    build_radiograph_net,
    count_parameters,
)
from calcdetect.nets.classes import (
    ANATOMY_CLASSES,
    COARSE_ANATOMY_CLASSES,
    RADIOGRAPH_CLASSES,
    REFINER_CLASSES,
    classes_to_labels,
    labels_to_classes,
)
from calcdetect.nets.fusion import anatomy_with_model, fuse_anatomy
from calcdetect.nets.inference import segment_anatomy, slice_levels_from_labels
from calcdetect.nets.levels import count_levels
from calcdetect.nets.refiner import extract_candidate_patches, refine_findings, score_candidates
from calcdetect.nets.weights import ModelSpec, load_model, read_spec, save_model, write_model_card

__all__ = [
    "ANATOMY_CLASSES",
    "COARSE_ANATOMY_CLASSES",
    "anatomy_with_model",
    "count_levels",
    "fuse_anatomy",
    "RADIOGRAPH_CLASSES",
    "REFINER_CLASSES",
    "NetConfig",
    "ModelSpec",
    "build_net",
    "build_anatomy_net",
    "build_calcium_refiner",
    "build_radiograph_net",
    "count_parameters",
    "classes_to_labels",
    "labels_to_classes",
    "save_model",
    "load_model",
    "read_spec",
    "write_model_card",
    "segment_anatomy",
    "extract_candidate_patches",
    "refine_findings",
    "score_candidates",
    "slice_levels_from_labels",
]
