"""Oriented boxes: streak corners, ultralytics OBB label lines, hull boxes; empty cases."""

from __future__ import annotations

import numpy as np

from afss_utils.coco import mask_to_rle
from afss_utils.debris.obb import (
    annotation_corners,
    axis_pad,
    corners_to_xywh,
    mask_to_corners,
    obb_label_line,
    streak_corners,
)


def test_streak_corners_horizontal_and_padded():
    c = streak_corners(np.array([[0.0, 0.0, 10.0, 0.0]]), np.array([2.0]))
    np.testing.assert_allclose(c, [[[0, 1], [10, 1], [10, -1], [0, -1]]])
    c = streak_corners(np.array([[[0.0, 0.0], [10.0, 0.0]]]), 2.0, pad=1.0)
    np.testing.assert_allclose(c, [[[-1, 2], [11, 2], [11, -2], [-1, -2]]])


def test_streak_corners_diagonal_and_degenerate():
    c = streak_corners([[0, 0, 2, 2], [5, 5, 5, 5]], [2 * np.sqrt(2), 2.0])
    np.testing.assert_allclose(c[0], [[-1, 1], [1, 3], [3, 1], [1, -1]], atol=1e-12)
    np.testing.assert_allclose(c[1], [[5, 6], [5, 6], [5, 4], [5, 4]])  # zero length: horizontal


def test_axis_pad_makes_the_hull_grow_by_pad():
    ends = np.array([[0, 0, 10, 0], [0, 0, 3, 4], [0, 0, 2, 2], [1, 1, 1, 1]], float)
    p = axis_pad(ends, 1.4)
    np.testing.assert_allclose(p, [1.4, 1.4 / 1.4, 1.4 / np.sqrt(2), 1.4])
    hull = corners_to_xywh(streak_corners(ends, 0.0, p))
    bare = corners_to_xywh(streak_corners(ends, 0.0))
    np.testing.assert_allclose(hull, bare + [-1.4, -1.4, 2.8, 2.8])
    assert axis_pad(np.zeros((0, 4)), 1.0).shape == (0,)


def test_empty_batches():
    assert streak_corners(np.zeros((0, 4)), np.zeros(0)).shape == (0, 4, 2)
    assert corners_to_xywh(np.zeros((0, 4, 2))).shape == (0, 4)
    assert corners_to_xywh(np.zeros((0, 8))).shape == (0, 4)
    assert mask_to_corners(np.zeros((5, 5), bool)) is None


def test_obb_label_line_normalises_and_clips():
    line = obb_label_line(np.array([[0, 0], [10, 0], [10, 5], [0, 5]]), 20, 10)
    assert line == "0 0.000000 0.000000 0.500000 0.000000 0.500000 0.500000 0.000000 0.500000"
    line = obb_label_line(np.array([[-2, 1], [30, 1], [30, 12], [-2, 12]]), 20, 10, cls=1)
    assert line == "1 0.000000 0.100000 1.000000 0.100000 1.000000 1.000000 0.000000 1.000000"


def test_corners_to_xywh_is_the_axis_aligned_hull():
    c = np.array([[[-1, 1], [1, 3], [3, 1], [1, -1]], [[0, 0], [4, 0], [4, 2], [0, 2]]], float)
    np.testing.assert_allclose(corners_to_xywh(c), [[-1, -1, 4, 4], [0, 0, 4, 2]])
    np.testing.assert_allclose(corners_to_xywh(c.reshape(2, 8)), [[-1, -1, 4, 4], [0, 0, 4, 2]])


def test_mask_to_corners_covers_the_pixels():
    mask = np.zeros((8, 8), bool)
    mask[2:4, 1:6] = True  # 5 x 2 pixels at x 1..5, y 2..3
    np.testing.assert_allclose(corners_to_xywh(mask_to_corners(mask)), [[1, 2, 5, 2]], atol=1e-4)


def test_annotation_corners_prefers_obb_then_mask_then_box():
    mask = np.zeros((8, 8), bool)
    mask[2:4, 1:6] = True
    obb = [0, 0, 4, 0, 4, 2, 0, 2]
    ann = {"bbox": [0, 0, 8, 8], "obb": obb, "segmentation": mask_to_rle(mask)}
    np.testing.assert_allclose(annotation_corners(ann, 8, 8), np.reshape(obb, (4, 2)))
    del ann["obb"]
    np.testing.assert_allclose(
        corners_to_xywh(annotation_corners(ann, 8, 8)), [[1, 2, 5, 2]], atol=1e-4
    )
    ann = {"bbox": [1, 2, 3, 4], "segmentation": mask_to_rle(np.zeros((8, 8), bool))}
    np.testing.assert_allclose(annotation_corners(ann, 8, 8), [[1, 2], [4, 2], [4, 6], [1, 6]])


def test_mask_endpoints_of_a_drawn_streak_and_the_empty_mask():
    from afss_utils.debris.obb import mask_endpoints

    mask = np.zeros((40, 60), bool)
    mask[18:22, 10:41] = True  # a horizontal streak 2 px wide, blurred by 1 px on every side
    ends = mask_endpoints(mask, width=2.0)
    ends = ends[np.argsort(ends[:, 0])]
    np.testing.assert_allclose(ends, [[11.0, 20.0], [40.0, 20.0]], atol=0.1)  # x 10-41, 1 px in
    # a diagonal one: the order of the corners minAreaRect returns does not matter
    diag = np.zeros((50, 50), bool)
    for t in range(30):
        diag[10 + t : 12 + t, 10 + t : 12 + t] = True
    e = mask_endpoints(diag)
    assert abs(np.linalg.norm(e[1] - e[0]) - 30 * np.sqrt(2)) < 3
    assert mask_endpoints(np.zeros((8, 8), bool)) is None
