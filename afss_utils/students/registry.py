"""Students by name: ``build_student(name, params)``."""

from __future__ import annotations

from collections.abc import Callable

from afss_utils.students.efficientdet import EfficientDetStudent
from afss_utils.students.protocol import Student
from afss_utils.students.yolo import YoloStudent

# ---------------------------------------------------------------------------- registry

STUDENTS: dict[str, Callable[[dict], Student]] = {
    "yolo11_det": lambda params: YoloStudent.from_params(params, "detect"),
    "yolo11_seg": lambda params: YoloStudent.from_params(params, "segment"),
    "efficientdet_d0": EfficientDetStudent.from_params,
    # imported when built (the center-heatmap student is only needed by notebook 06)
    "center_resnet18": lambda params: _centernet().CenterNetStudent.from_params(params),
    # the same backbone with CenterNet's stride-8 neck and offset/size heads (issue #23)
    "center_resnet18_s8": lambda params: _centernet().CenterNetStudent.from_params(
        params, stride=8
    ),
}


def _centernet():
    from afss_utils.students import centernet

    return centernet


def build_student(name: str, params: dict) -> Student:
    """A fresh, untrained student by name (``yolo11_det``, ``yolo11_seg``, ``efficientdet_d0``,
    ``center_resnet18``, ``center_resnet18_s8``: the backbone is ``params["center"]["backbone"]``)."""
    if name not in STUDENTS:
        raise KeyError(f"unknown student '{name}'; known students: {', '.join(STUDENTS)}")
    return STUDENTS[name](params)
