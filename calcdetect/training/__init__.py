"""Training the anatomy CNN on public dataset layouts and synthetic phantoms (issue #5).

Public surface::

    TrainConfig.from_yaml(path)                    configs/train.yaml is the default recipe
    train(config, data, rundir, device, *, epochs=None, resume=False) -> TrainResult
    parse_data_spec("KIND=PATH") -> (kind, Path)   for the CLI's --data
    discover_cases(kind, path) / load_case(case)   dataset layouts -> ANATOMY_CLASSES
"""

from calcdetect.training.config import AugmentConfig, PhantomConfig, TrainConfig
from calcdetect.training.datasets import (
    DATASET_KINDS,
    Case,
    CaseData,
    class_for_name,
    discover_cases,
    load_case,
    parse_data_spec,
    weak_calcium_mask,
)
from calcdetect.training.trainer import TrainResult, dice_per_class, train

__all__ = [
    "AugmentConfig",
    "PhantomConfig",
    "TrainConfig",
    "TrainResult",
    "DATASET_KINDS",
    "Case",
    "CaseData",
    "class_for_name",
    "discover_cases",
    "load_case",
    "parse_data_spec",
    "weak_calcium_mask",
    "dice_per_class",
    "train",
]
