"""The demo panel's comparison tiles: one colour scale after the scale fit, an honest error map,
and a gating legend with every expert's share."""
from __future__ import annotations

import numpy as np

from moe3d_ros.eval.render import depth_comparison, gating_with_legend
from moe3d_ros.outputs.postprocess import GATING_PALETTE


def test_a_prediction_off_by_a_scale_gets_the_ground_truths_colours_and_no_error():
    gt = np.linspace(1.0, 5.0, 40 * 60, dtype=np.float32).reshape(40, 60)
    depth = gt / 2
    depth[0, 0] = np.nan  # no prediction: black in the error map
    (pred_label, pred), (_, truth), (error_label, error) = depth_comparison(depth, gt)
    assert pred_label.startswith("prediction x2 ") and "AbsRel 0.000" in error_label
    np.testing.assert_array_equal(pred[1:, 1:], truth[1:, 1:])
    assert (error[0, 0] == 0).all() and np.array_equal(error[5, 5], error[20, 30])  # all pixels: zero error, one colour


def test_a_wrong_region_shows_in_the_error_map():
    gt = np.full((40, 60), 2.0, np.float32)
    depth = gt.copy()
    depth[10:20, 10:20] = 3.0  # a false step
    _, _, (label, error) = depth_comparison(depth, gt)
    assert not np.array_equal(error[15, 15], error[30, 40]) and "AbsRel 0.021" in label


def test_the_gating_legend_lists_every_expert_with_its_share():
    winner = np.zeros((60, 80), np.uint8)
    winner[:, 60:] = 2  # expert 1 never wins and must still be listed
    image = gating_with_legend(winner, 3, GATING_PALETTE)
    assert image.shape == (60, 80, 3)
    np.testing.assert_array_equal(image[5, 40], GATING_PALETTE[0])
    np.testing.assert_array_equal(image[5, 70], GATING_PALETTE[2])
    for expert in range(3):  # each legend swatch is drawn in its expert's colour
        top = 60 - 14 * (3 - expert) - 2
        np.testing.assert_array_equal(image[top + 6, 8], GATING_PALETTE[expert])


def test_every_caption_is_shown_whole_and_a_row_keeps_one_height():
    from moe3d_ros.eval.render import caption_lines, panel

    title = "MoE rel. error 0-0.25, AbsRel 0.1234"
    lines = caption_lines(title, 224)
    assert " ".join(lines) == title  # nothing cut
    assert all(len(line) * 6 <= 224 - 6 for line in lines)
    narrow = caption_lines(title, 100)
    assert " ".join(narrow) == title and len(narrow) > len(lines)
    tile = np.zeros((20, 100, 3), np.uint8)
    picture = panel([[(title, tile), ("short", tile)], [("one", tile)]])
    assert picture.shape[1] == 200  # two tiles wide; the short caption padded to the long one's height
    assert picture.shape[0] == (14 * len(narrow) + 4 + 20) + (14 + 4 + 20)
