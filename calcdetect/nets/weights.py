"""Weights I/O: safetensors files plus a Markdown model card.

A model is two files side by side::

    models/<name>.safetensors   tensors + metadata {"calcdetect": <ModelSpec JSON>}
    models/<name>.md            model card: architecture, data, recipe, metrics,
                                licence and the file's ``sha256: <hex>`` line

``load_model`` rebuilds the module from the architecture stored in the file (never
from pickled code), checks the file's SHA-256 against the card, and loads the
tensors strictly. Pickle (``torch.load``) is never used for weights.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from torch import nn

from calcdetect.device import Device
from calcdetect.errors import ConfigError, InputError
from calcdetect.export.atomic import atomic_write_text, atomic_write_with
from calcdetect.nets.builders import NetConfig, build_net

__all__ = [
    "FORMAT",
    "ModelSpec",
    "save_model",
    "load_model",
    "read_spec",
    "file_sha256",
    "weights_source",
    "card_path",
    "write_model_card",
    "card_sha256",
]

FORMAT = "calcdetect-model/1"
_SHA_LINE = re.compile(r"^\s*[-*]?\s*sha256:\s*`?([0-9a-fA-F]{64})`?\s*$", re.MULTILINE)


@dataclass(frozen=True)
class ModelSpec:
    """Everything inference needs besides the tensors.

    Parameters
    ----------
    task
        ``"anatomy"``, ``"refiner"`` or ``"radiograph"``.
    net
        The architecture (rebuilt with :func:`calcdetect.nets.builders.build_net`).
    classes
        Output channel names (``ANATOMY_CLASSES`` for the anatomy net).
    spacing_mm
        Grid the net was trained on, ``(sk, sj, si)`` mm (empty for the refiner).
    intensity
        Normalisation: ``{"clip_low", "clip_high", "mean", "std"}`` in HU.
    patch_size
        Training patch size (voxels, array-axis order).
    extra
        Free-form strings (training data, version) shown on the card.
    """

    task: str
    net: NetConfig
    classes: tuple[str, ...]
    spacing_mm: tuple[float, ...] = ()
    intensity: dict[str, float] = field(default_factory=dict)
    patch_size: tuple[int, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.classes) != self.net.out_channels:
            raise ConfigError(
                f"{len(self.classes)} class names for a net with {self.net.out_channels} output channels"
            )

    def to_json(self) -> str:
        d = asdict(self)
        d["net"] = self.net.to_dict()
        d["format"] = FORMAT
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelSpec":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"model metadata is not valid JSON: {exc}") from None
        if d.pop("format", None) != FORMAT:
            raise InputError(f"model metadata is not {FORMAT!r}; was the file written by calcdetect?")
        return cls(
            task=str(d["task"]),
            net=NetConfig.from_dict(d["net"]),
            classes=tuple(d["classes"]),
            spacing_mm=tuple(float(v) for v in d.get("spacing_mm", ())),
            intensity={k: float(v) for k, v in d.get("intensity", {}).items()},
            patch_size=tuple(int(v) for v in d.get("patch_size", ())),
            extra={k: str(v) for k, v in d.get("extra", {}).items()},
        )


def weights_source(path: Path) -> dict[str, str]:
    """A weights file's name and SHA-256, for the provenance of a reading (no directory: a
    path may name a person or a site)."""
    path = Path(path)
    return {"file": path.name, "sha256": file_sha256(path)}


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def card_path(weights: Path) -> Path:
    """``models/x.safetensors`` -> ``models/x.md``."""
    return Path(weights).with_suffix(".md")


def save_model(module: nn.Module, path: Path, spec: ModelSpec, metadata: Mapping[str, str] | None = None) -> str:
    """Write ``module``'s tensors and ``spec`` to a safetensors file (atomically).

    Parameters
    ----------
    module
        The network (a DDP wrapper is unwrapped).
    path
        Destination ``*.safetensors``.
    spec
        Architecture and inference settings, stored as JSON under ``"calcdetect"``.
    metadata
        Extra string metadata stored alongside (e.g. ``{"git": "..."}``).

    Returns
    -------
    str
        The SHA-256 of the written file (put it on the model card).
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ConfigError(f"weights must be saved as *.safetensors, got {path.name!r}")
    module = getattr(module, "module", module)  # DistributedDataParallel
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta["calcdetect"] = spec.to_json()
    atomic_write_with(path, lambda p: save_file(tensors, str(p), metadata=meta), suffix=".safetensors")
    return file_sha256(path)


def read_spec(path: Path) -> ModelSpec:
    """Read the :class:`ModelSpec` stored in a safetensors file (no tensors loaded)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise InputError(f"model file {str(path)!r} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types
        raise InputError(f"{str(path)!r} is not a readable safetensors file: {exc}") from None
    if "calcdetect" not in meta:
        raise InputError(f"{str(path)!r} has no calcdetect metadata; it was not written by save_model")
    return ModelSpec.from_json(meta["calcdetect"])


def card_sha256(card: Path) -> str | None:
    """The ``sha256: <hex>`` value written on a model card, if any."""
    m = _SHA_LINE.search(Path(card).read_text(encoding="utf-8"))
    return m.group(1).lower() if m else None


def load_model(
    path: Path, device: Device, *, sha256: str | None = None, require_card: bool = True
) -> nn.Module:
    """Rebuild a network from a safetensors file and load its weights.

    Parameters
    ----------
    path
        ``*.safetensors`` written by :func:`save_model`.
    device
        Where the module is placed.
    sha256
        Expected file hash; by default it is read from the model card next to the
        file (``<name>.md``).
    require_card
        When no ``sha256`` is given, a missing card (or a card without a hash) is
        an error unless this is ``False``.

    Returns
    -------
    torch.nn.Module
        The network in eval mode, with its :class:`ModelSpec` as ``module.spec``.
    """
    from safetensors.torch import load_file

    path = Path(path)
    spec = read_spec(path)
    expected = sha256
    if expected is None:
        card = card_path(path)
        if card.is_file():
            expected = card_sha256(card)
        if expected is None and require_card:
            raise InputError(
                f"no sha256 for {str(path)!r}: write the model card {card.name!r} (write_model_card) "
                "or pass sha256=..., or require_card=False for an unverified file"
            )
    if expected is not None:
        actual = file_sha256(path)
        if actual != expected.lower():
            raise InputError(
                f"{str(path)!r} has sha256 {actual}, but its model card says {expected}; "
                "the file is corrupt or does not belong to this card"
            )
    module = build_net(spec.net)
    state = load_file(str(path), device="cpu")
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise InputError(
            f"{str(path)!r} does not match its stored architecture ({spec.net.arch}): "
            f"missing {list(missing)[:5]}, unexpected {list(unexpected)[:5]}"
        )
    module.spec = spec  # type: ignore[attr-defined]
    return module.to(device.torch).eval()


def write_model_card(
    weights: Path,
    *,
    title: str,
    sections: Mapping[str, str],
    licence: str = "Apache-2.0 (weights trained only on synthetic or openly licensed data)",
) -> Path:
    """Write ``<name>.md`` next to ``weights``: spec, free sections, licence and sha256.

    ``sections`` maps headings ("Training data", "Recipe", "Metrics", "Limitations")
    to Markdown text.
    """
    weights = Path(weights)
    spec = read_spec(weights)
    from calcdetect.nets.builders import count_parameters

    n_params = count_parameters(build_net(spec.net))
    lines = [
        f"# {title}",
        "",
        "## Architecture",
        "",
        f"- task: {spec.task}",
        f"- arch: {spec.net.arch}, channels {list(spec.net.channels)}, norm {spec.net.norm}, "
        f"{spec.net.in_channels} -> {spec.net.out_channels} channels, {spec.net.spatial_dims}-D",
        f"- parameters: {n_params:,}",
        f"- grid spacing (mm, k j i): {list(spec.spacing_mm)}; patch {list(spec.patch_size)}",
        f"- intensity: {json.dumps(spec.intensity)}",
        f"- classes: {', '.join(spec.classes)}",
        "",
    ]
    return write_card_sections(weights, lines, sections, licence)


def write_card_sections(weights: Path, head: list[str], sections: Mapping[str, str], licence: str) -> Path:
    """Write ``weights``' model card: ``head`` lines, one ``## heading`` per section, the
    licence, and the file's name, size and SHA-256 (which :func:`load_model` checks)."""
    lines = list(head)
    for heading, text in sections.items():
        lines += [f"## {heading}", "", text.strip(), ""]
    lines += [
        "## Licence", "", licence, "",
        "## File", "",
        f"- file: {weights.name}",
        f"- bytes: {weights.stat().st_size}",
        f"- sha256: {file_sha256(weights)}",
        "",
    ]
    return atomic_write_text(card_path(weights), "\n".join(lines))


