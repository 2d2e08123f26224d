"""A small real student checkpoint and real images for the export tests."""
import pytest
import torch

from distill.checkpoint import save_student
from distill.core.preprocess import Preprocess
from distill.students import create_student


@pytest.fixture(scope="session")
def student_ckpt(tmp_path_factory, cifar_small):
    """resnet10t at 32 px (fast to export), random weights, with a config that points at real images."""
    torch.manual_seed(0)
    student = create_student("resnet10t", img_size=32).eval()
    run = tmp_path_factory.mktemp("run")
    config = {"data": str(cifar_small / "train"), "val": str(cifar_small / "test")}
    save_student(run / "student.pt", student, Preprocess(input_size=32), config)
    return run

