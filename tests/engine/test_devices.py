"""One device resolver for the window and the commands: names, auto, and one-line errors."""

import pytest
import torch

from gptviz.engine.devices import process_device, resolve_device
from gptviz.engine.distributed import SINGLE, DistInfo
from gptviz.errors import ConfigError


def test_cpu_and_auto_resolve_on_a_machine_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_a_gpu_asked_for_without_one_is_a_one_line_error(monkeypatch, name):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="sees no CUDA GPU") as info:
        resolve_device(name)
    assert "\n" not in str(info.value)


def test_an_unknown_name_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="use cpu, cuda, cuda:N or auto"):
        resolve_device("tpu-please")


def test_plain_cuda_is_this_processs_gpu_in_a_distributed_run(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert resolve_device("cuda", local_rank=3) == torch.device("cuda", 3)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:2", local_rank=3) == torch.device("cuda", 2)


def test_a_training_process_takes_its_ranks_gpu_only_under_torchrun(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert process_device("cuda", DistInfo(rank=2, world_size=4, local_rank=2)) == torch.device("cuda", 2)
    assert process_device("cuda", SINGLE) == torch.device("cuda", 1)  # one process: the current GPU
    assert process_device("cpu", DistInfo(rank=1, world_size=2, local_rank=1)) == torch.device("cpu")
