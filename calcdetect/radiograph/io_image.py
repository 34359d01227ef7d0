"""Radiographs from outside DICOM: PNG / JPEG / TIFF files and lateral projections of CT.

* :func:`load_plain_image` reads a greyscale picture with Pillow. A picture file
  carries no trustworthy pixel spacing, so it comes from the caller (the command
  line); without it the image loads but :func:`~calcdetect.radiograph.analyse.check_lateral_spine`
  refuses to score it. The picture is assumed to be *displayed* the usual way
  (bone bright); no metadata (EXIF, text chunks) is read, so nothing identifying
  is carried along.
* :func:`radiograph_from_ct` makes a reconstructed lateral radiograph (a digitally
  reconstructed radiograph without divergence): the sum of linear attenuation
  along the patient's left-right axis.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calcdetect.errors import InputError
from calcdetect.types import AcquisitionInfo, Radiograph, Volume

__all__ = ["load_plain_image", "radiograph_from_ct", "dicom_body_part", "PLAIN_IMAGE_SUFFIXES"]

PLAIN_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
_MU_WATER_PER_MM = 0.0206  # ~60 keV, the effective energy of a lateral lumbar exposure


def load_plain_image(path: Path | str, pixel_spacing_mm: float | None) -> Radiograph:
    """Read a PNG / JPEG / TIFF radiograph; ``pixel_spacing_mm`` comes from the user.

    Parameters
    ----------
    path
        The picture file (8- or 16-bit greyscale; colour pictures are converted to
        grey with a warning).
    pixel_spacing_mm
        Square pixel spacing in mm at the patient plane, or ``None`` (then sizes
        cannot be measured and the radiograph stage refuses to score).

    Raises
    ------
    InputError
        Missing / unreadable file, an unsupported format, or a non-positive spacing.

    Examples
    --------
    >>> # rg = load_plain_image("lateral.png", 0.15)
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; give the path of a PNG, JPEG or TIFF radiograph")
    if pixel_spacing_mm is not None and not (np.isfinite(pixel_spacing_mm) and pixel_spacing_mm > 0):
        raise InputError(
            f"pixel spacing {pixel_spacing_mm!r} mm is not a positive number; give the detector "
            "pixel size at the patient plane, e.g. --pixel-spacing 0.15"
        )
    warnings: list[str] = []
    try:
        with Image.open(path) as im:
            if getattr(im, "n_frames", 1) > 1:
                warnings.append(f"{path.name}: multi-page image, page 1 of {im.n_frames} used")
            im.seek(0)
            mode = im.mode
            if mode in ("RGB", "RGBA", "P", "CMYK", "YCbCr", "LA", "PA"):
                rgb = np.asarray(im.convert("RGB"), dtype=np.float32)
                if np.abs(rgb[..., 0] - rgb[..., 1]).max() > 8 or np.abs(rgb[..., 1] - rgb[..., 2]).max() > 8:
                    warnings.append(
                        f"{path.name}: colour picture converted to grey; annotations drawn in colour "
                        "may disturb the analysis"
                    )
                array = rgb.mean(axis=-1)
            elif mode == "1":
                raise InputError(f"{path}: a 1-bit (black and white) picture cannot be analysed")
            else:  # L, I;16, I, F
                array = np.asarray(im, dtype=np.float32)
    except UnidentifiedImageError as exc:
        raise InputError(
            f"{path}: not a readable PNG / JPEG / TIFF picture ({exc}); for DICOM give the folder "
            "or file to the DICOM reader instead"
        ) from exc
    except OSError as exc:
        raise InputError(f"{path}: could not read the picture ({exc}); the file may be truncated") from exc
    if array.ndim != 2 or min(array.shape) < 16:
        raise InputError(f"{path}: picture of shape {array.shape} is not a 2-D radiograph")
    spacing = None if pixel_spacing_mm is None else (float(pixel_spacing_mm), float(pixel_spacing_mm))
    if spacing is None:
        warnings.append("no pixel spacing given for the picture: sizes cannot be given in mm")
    return Radiograph(
        array=np.ascontiguousarray(array),
        pixel_spacing=spacing,
        info=AcquisitionInfo(modality="OT", pixel_spacing_mm=spacing),
        view="unknown",
        spacing_source="user" if spacing else None,
        warnings=tuple(warnings),
    )


def radiograph_from_ct(volume: Volume) -> Radiograph:
    """A lateral radiograph reconstructed from a CT: attenuation summed left-right.

    ``mu = mu_water * max(0, 1 + HU / 1000)`` (first order; bone's extra
    attenuation at radiographic energies is not modelled), summed along ``i``
    (LPS x) times the spacing. Rows run head to foot (row 0 superior), columns
    anterior to posterior (the patient faces the image's left).

    Parameters
    ----------
    volume
        A canonical CT volume (``k`` superior, ``j`` posterior, ``i`` left).

    Returns
    -------
    Radiograph
        ``view="lateral"``, pixel spacing ``(sk, sj)``, ``spacing_source`` "ct".

    Examples
    --------
    >>> import numpy as np
    >>> from calcdetect.types import AcquisitionInfo, Volume
    >>> v = Volume(np.zeros((4, 5, 6), np.float32), (2.0, 1.0, 1.0), np.eye(4), AcquisitionInfo("CT"))
    >>> radiograph_from_ct(v).array.shape
    (4, 5)
    """
    sk, sj, si = volume.spacing
    mu = _MU_WATER_PER_MM * np.clip(1.0 + volume.array.astype(np.float32) / 1000.0, 0.0, None)
    line = mu.sum(axis=2) * si  # [k, j]
    image = line[::-1].astype(np.float32)  # row 0 = most superior slice
    info = AcquisitionInfo(
        modality="DX",
        kvp=None,
        pixel_spacing_mm=(float(sk), float(sj)),
        series_description="lateral projection reconstructed from CT",
        series_uid_hash=volume.info.series_uid_hash,
        study_uid_hash=volume.info.study_uid_hash,
    )
    return Radiograph(
        array=np.ascontiguousarray(image),
        pixel_spacing=(float(sk), float(sj)),
        info=info,
        view="lateral",
        spacing_source="ct",
        warnings=("reconstructed from CT: a parallel-beam lateral projection, no magnification",),
    )


def dicom_body_part(path: Path | str) -> str | None:
    """BodyPartExamined (else Study Description) of a DICOM file, for the view check.

    Only these two technical description fields are read (no patient data); the
    value is used to refuse non-spine radiographs and is never written out.
    Returns ``None`` when the file has neither or cannot be read.
    """
    import pydicom

    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True, force=True,
                             specific_tags=["BodyPartExamined", "StudyDescription"])
    except Exception:  # unreadable header: the loader has already said why
        return None
    for attr in ("BodyPartExamined", "StudyDescription"):
        value = str(ds.get(attr) or "").strip()
        if value:
            return value
    return None
