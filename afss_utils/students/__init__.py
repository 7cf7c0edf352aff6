"""Student detectors the pseudo-labels are distilled into (paper III-C, IV-C): YOLO11 (detect or
segment, ultralytics), EfficientDet-D0 (effdet) and a center-heatmap detector/classifier, trained
from scratch here (no weights can be downloaded; a local ``.pt`` may be given for YOLO).

Every student has the same small interface (:class:`Student`): ``train(instances, image_dir,
out_dir, val=None)`` on a COCO instances dict, and ``predict(dataset)`` -> COCO results (``bbox``
xywh pixels of the original image, ``score``, RLE ``segmentation`` for segmenters), so all
stages are scored by the same evaluator. ``build_student(name, params)`` makes one from the
study params (keys ``yolo``, ``efficientdet``, ``center``, ``device``, ``seed``, ``top_k``).

Modules: ``protocol`` (the interface), ``yolo`` + ``yolo_export`` (COCO -> ultralytics dataset),
``efficientdet``, ``centernet``, ``training`` (letterbox caching, flips, schedule shared by the
hand-written loops), ``registry`` (``build_student``).
"""

from afss_utils.students.efficientdet import (
    EfficientDetStudent,
    from_effdet_detections,
    to_effdet_target,
)
from afss_utils.students.protocol import PREDICT_CONF, Student
from afss_utils.students.registry import STUDENTS, build_student
from afss_utils.students.training import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    cpu_supports_bf16,
    letterbox,
    load_letterboxed,
    random_flips,
    resolve_precision,
    warmup_cosine,
)
from afss_utils.students.yolo import (
    YoloStudent,
    yolo_model_source,
)
from afss_utils.students.yolo_export import (
    ExportReport,
    export_yolo,
    mask_to_polygons,
    yolo_label_lines,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PREDICT_CONF",
    "STUDENTS",
    "EfficientDetStudent",
    "ExportReport",
    "Student",
    "YoloStudent",
    "build_student",
    "cpu_supports_bf16",
    "export_yolo",
    "from_effdet_detections",
    "letterbox",
    "load_letterboxed",
    "mask_to_polygons",
    "random_flips",
    "resolve_precision",
    "to_effdet_target",
    "warmup_cosine",
    "yolo_label_lines",
    "yolo_model_source",
]
