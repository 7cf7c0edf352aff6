"""Zero-shot teachers behind one protocol: ``build_teacher(name, **params).predict(image)``."""

from afss_utils.teachers.base import (
    Prediction,
    Teacher,
    WeightsNotFoundError,
    available_teachers,
    build_available,
    build_teacher,
    register_teacher,
)

__all__ = [
    "Prediction",
    "Teacher",
    "WeightsNotFoundError",
    "available_teachers",
    "build_available",
    "build_teacher",
    "register_teacher",
]
