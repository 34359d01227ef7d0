"""DICOM CT + DICOM SEG training cases (segments mapped by name, placed by geometry)."""

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
hd = pytest.importorskip("highdicom")

from calcdetect.errors import InputError  # noqa: E402
from calcdetect.io.dicom_write import write_ct_series  # noqa: E402
from calcdetect.nets.classes import class_index  # noqa: E402
from calcdetect.training import discover_cases, load_case  # noqa: E402
from synthetic_layouts import affine, synthetic_case  # noqa: E402


def _write_case(folder, labels=("Aorta", "kidney left"), reverse_frames=False):
    from pydicom.sr.codedict import codes

    hu, masks = synthetic_case(3)
    hu, masks = hu[:6], {k: v[:6] for k, v in masks.items()}
    files = write_ct_series(hu, (2.0, 2.0, 2.0), affine(), folder / "ct", seed=1)
    src = [pydicom.dcmread(f) for f in files]
    if reverse_frames:
        src = src[::-1]
    ks = [int(round(float(d.ImagePositionPatient[2]) / 2.0)) for d in src]
    pix = np.stack([np.stack([masks["aorta"][k], masks["kidney_left"][k]], -1) for k in ks]).astype(np.uint8)
    descs = [
        hd.seg.SegmentDescription(
            segment_number=n + 1, segment_label=lab, segmented_property_category=codes.cid7150.Tissue,
            segmented_property_type=codes.cid7166.ConnectiveTissue, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for n, lab in enumerate(labels)
    ]
    seg = hd.seg.Segmentation(
        source_images=src, pixel_array=pix, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descs, series_instance_uid=hd.UID(), series_number=2, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="test", manufacturer_model_name="test", software_versions="1",
        device_serial_number="1",
    )
    seg.save_as(folder / "seg.dcm")
    return hu, masks


@pytest.mark.parametrize("reverse", [False, True])
def test_dicom_seg_case_round_trip(tmp_path, reverse):
    hu, masks = _write_case(tmp_path / "patient_name_folder", reverse_frames=reverse)
    cases = discover_cases("dicomseg", tmp_path)
    assert len(cases) == 1 and "patient_name_folder" not in repr(cases[0])
    assert cases[0].annotated[class_index("aorta")] and not cases[0].annotated[class_index("kidney_right")]
    data = load_case(cases[0])
    assert np.allclose(data.image, hu, atol=1.0)
    assert np.array_equal(data.labels == class_index("aorta"), masks["aorta"])
    assert np.array_equal(data.labels == class_index("kidney_left"), masks["kidney_left"])


def test_dicom_seg_errors(tmp_path):
    with pytest.raises(InputError, match="no DICOM SEG"):
        discover_cases("dicomseg", tmp_path)
    _write_case(tmp_path / "c", labels=("tumour", "cyst"))
    with pytest.raises(InputError, match="match our classes"):
        discover_cases("dicomseg", tmp_path)
