"""The device is resolved once; an explicit CUDA request never falls back silently."""

from __future__ import annotations

import pytest
import torch

from calcdetect.device import Device, resolve_device
from calcdetect.errors import DeviceError


def test_cpu_and_auto():
    assert resolve_device("cpu") == Device("cpu")
    auto = resolve_device("auto")
    assert auto.type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "tpu", "cuda0"])
def test_unknown_spec_is_refused_with_the_valid_choices(spec):
    with pytest.raises(DeviceError, match="use 'auto', 'cpu', 'cuda' or 'cuda:N'"):
        resolve_device(spec)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_explicit_cuda_without_gpu_is_an_error():
    with pytest.raises(DeviceError, match="--device cpu"):
        resolve_device("cuda")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_resolves_to_index():
    assert resolve_device("cuda:0").torch == "cuda:0"
