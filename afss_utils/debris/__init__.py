"""Stage 05, space debris: simulated telescope videos -> label-free detectors -> trackers.

- :mod:`~afss_utils.debris.simulation`: SDTD-style sky videos with moving line-source debris,
  the paper's ZScale stretch, COCO + MOTChallenge ground truth (CLI:
  ``python -m afss_utils.debris.simulation``).
- :mod:`~afss_utils.debris.teacher`: the weight-free ``streak`` teacher (matched filter or LSD),
  registered with :func:`afss_utils.teachers.build_teacher`.
- :mod:`~afss_utils.debris.obb`: streak / oriented-box geometry for ultralytics' ``obb`` task.
- :mod:`~afss_utils.debris.tracking`: trackers over per-frame detections and the MOT metrics
  (trackeval, cross-checked by motmetrics).
- :mod:`~afss_utils.debris.sdtnet`: SDT-Net (endpoint heatmaps, line-source embedding, RoI-FE,
  debris offsets) with its targets, losses, decoding, association, training and tracking.
- :mod:`~afss_utils.debris.stage`: notebook 05's glue: render the splits, train the YOLO box
  students, track and score them, the table beside the SDT-Net paper's Table 2, drawing.

The modules are imported on demand (``from afss_utils.debris import obb``), so importing the
package itself loads nothing heavy.
"""
