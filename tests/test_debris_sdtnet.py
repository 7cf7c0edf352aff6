"""SDT-Net: targets, embedding pairing, decoding, offset association, training and tracking."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from afss_utils.debris import sdtnet
from afss_utils.debris.sdtnet import Detection, SDTNetConfig
from afss_utils.debris.simulation import DebrisConfig, generate_split, render_video

SIZE = (64, 64)  # frames; stride 4 -> 16 x 16 output cells


def ann(endpoints, track_id=1, width=2.0):
    return {"endpoints": list(endpoints), "track_id": track_id, "width": width}


def ideal_outputs(streaks, config: SDTNetConfig, embeddings=None, offsets=None, reach=False):
    """What a perfect network would say about one 64 x 64 frame: streaks (K, 2, 2) xy pixels
    (left, right) -> a batch-of-one outputs dict: 1 at each endpoint's cell and 0 elsewhere,
    the exact sub-cell positions, the given embeddings (K,) and offsets (K, 2, 2) pixels, and
    with ``reach`` each endpoint's exact vector to its partner (cells)."""
    h, w = SIZE[0] // 4, SIZE[1] // 4
    out = {
        "heatmap": torch.zeros(1, 2, h, w),
        "subcell": torch.zeros(1, 4, h, w),
        "offset": torch.zeros(1, 4, h, w),
        "embedding": torch.zeros(1, 2, h, w),
    }
    if reach:
        out["reach"] = torch.zeros(1, 4, h, w)
    for k, ends in enumerate(np.asarray(streaks, float)):
        for p, (x, y) in enumerate(ends):
            c, r = int(x // 4), int(y // 4)
            out["heatmap"][0, p, r, c] = 1.0
            out["subcell"][0, 2 * p : 2 * p + 2, r, c] = torch.tensor([x / 4 - c, y / 4 - r])
            if offsets is not None:
                out["offset"][0, 2 * p : 2 * p + 2, r, c] = torch.tensor(offsets[k][p])
            if embeddings is not None:
                out["embedding"][0, p, r, c] = float(embeddings[k])
            if reach:
                to = torch.tensor((ends[1 - p] - ends[p]) / 4, dtype=torch.float32)
                out["reach"][0, 2 * p : 2 * p + 2, r, c] = to
    return out


# ---------------------------------------------------------------------------- targets
def test_heatmap_target_peaks_at_the_two_endpoints():
    cfg = SDTNetConfig(variant="full")
    # written right endpoint first: the target must still put (12.3, 20.7) in the left map
    t = sdtnet.targets([ann([40.5, 30.2, 12.3, 20.7])], [], SIZE, cfg)
    hm = t["heatmap"].numpy()
    assert hm.shape == (2, 16, 16)
    for p, (x, y) in enumerate([(12.3, 20.7), (40.5, 30.2)]):
        r, c = np.unravel_index(np.argmax(hm[p]), hm[p].shape)
        assert (r, c) == (int(y // 4), int(x // 4))
        assert hm[p, r, c] == 1.0 and (hm[p] == 1.0).sum() == 1
        cell = np.array([c, r])
        assert np.allclose((cell + t["subcell"][0, p].numpy()) * 4, [x, y], atol=1e-5)
    assert t["valid"].tolist() == [True] + [False] * (cfg.max_objects - 1)
    assert t["index"][0].tolist() == [5 * 16 + 3, 7 * 16 + 10]
    mask = t["mask"][0].numpy()
    assert mask[5, 3] == 1 and mask[7, 10] == 1 and mask[0, 15] == 0  # along the streak only
    assert not t["offset_valid"].any()  # no previous frame: no offset target
    assert t["prev_heatmap"].sum() == 0


def test_reach_target_points_each_endpoint_at_its_partner():
    cfg = SDTNetConfig(variant="full", reach_weight=1.0)
    t = sdtnet.targets([ann([40.5, 30.2, 12.3, 20.7])], [], SIZE, cfg)
    to_right = np.array([40.5 - 12.3, 30.2 - 20.7]) / 4  # cells
    reach, where = t["reach"].numpy(), t["reach_cells"].numpy()
    for p, (col, row), vec in ((0, (3, 5), to_right), (1, (10, 7), -to_right)):
        near = np.zeros((16, 16), bool)
        near[row - 1 : row + 2, col - 1 : col + 2] = True  # the endpoint's 3 x 3 cells
        assert np.array_equal(where[p] == 1, near) and where[p][~near].sum() == 0
        assert np.allclose(reach[2 * p : 2 * p + 2][:, near].T, vec, atol=1e-6)
        assert not reach[2 * p : 2 * p + 2][:, ~near].any()
    assert "reach" not in sdtnet.targets([], [], SIZE, SDTNetConfig(variant="center"))


def test_left_is_smaller_x_then_smaller_y():
    ends = sdtnet.endpoint_pairs([ann([30, 40, 30, 10]), ann([50, 5, 20, 9])])
    assert ends.tolist() == [[[30, 10], [30, 40]], [[20, 9], [50, 5]]]


def test_offset_target_points_to_the_previous_frame():
    cfg = SDTNetConfig(variant="endpoints")
    prev = [ann([10, 10, 20, 12], track_id=7), ann([40, 40, 50, 50], track_id=3)]
    cur = [ann([24, 15, 14, 13], track_id=7), ann([1, 1, 5, 5], track_id=9)]
    t = sdtnet.targets(cur, prev, SIZE, cfg)
    assert t["offset_valid"][:2].tolist() == [True, False]  # track 9 is new
    assert np.allclose(t["offset"][0].numpy(), [[-4, -3], [-4, -3]])
    assert t["prev_heatmap"].shape == (2, 16, 16) and t["prev_heatmap"].max() == 1


@pytest.mark.parametrize("variant", sdtnet.VARIANTS)
def test_targets_and_losses_of_a_frame_without_debris(variant):
    cfg = SDTNetConfig(variant=variant)
    t = sdtnet.targets([], [], SIZE, cfg)
    assert all(float(v.float().abs().sum()) == 0 for v in t.values())
    model = sdtnet.build_model(SDTNetConfig(variant=variant, channels=8))
    batch = sdtnet.collate([t, t])
    image = sdtnet.to_input(np.zeros((2, *SIZE, 3), np.uint8))
    out = model(image, image, batch["prev_heatmap"])
    terms = sdtnet.losses(out, batch, cfg)
    assert all(torch.isfinite(v) for v in terms.values())
    terms["total"].backward()  # no debris still trains the background
    assert sdtnet.decode({k: v.detach() * 0 + 1e-4 for k, v in out.items()}, cfg) == [[], []]


# ---------------------------------------------------------------------------- decoding
def test_decode_of_ideal_outputs_gives_the_exact_endpoints():
    cfg = SDTNetConfig(variant="endpoints")
    streaks = [[[6.25, 9.5], [30.75, 21.0]], [[40.0, 50.5], [58.5, 44.25]]]
    offsets = [[[-3.0, -1.5], [-3.0, -1.5]], [[2.0, 0.5], [2.0, 0.5]]]
    out = ideal_outputs(streaks, cfg, embeddings=[0.0, 1.0], offsets=offsets)
    dets = sdtnet.decode(out, cfg)[0]
    assert len(dets) == 2
    got = sorted(dets, key=lambda d: d.endpoints[0, 0])
    for d, ends, off in zip(got, streaks, offsets, strict=True):
        assert np.allclose(d.endpoints, ends, atol=1e-5)
        assert np.allclose(d.offset, off, atol=1e-6)
        assert d.score == pytest.approx(1.0)
        box = sdtnet.streak_boxes(np.asarray(ends)[None], cfg.streak_width, cfg.box_pad)[0]
        assert np.allclose(d.box, box, atol=1e-5)
        assert d.box[0] < ends[0][0] and d.box[2] > ends[1][0]  # padded around the streak


def test_decode_of_ideal_centre_outputs_gives_the_exact_box():
    cfg = SDTNetConfig(variant="center")
    h = w = 16
    out = {
        "heatmap": torch.zeros(1, 1, h, w),
        "subcell": torch.zeros(1, 2, h, w),
        "offset": torch.zeros(1, 2, h, w),
        "size": torch.zeros(1, 2, h, w),
    }
    out["heatmap"][0, 0, 5, 7] = 0.9
    out["subcell"][0, :, 5, 7] = torch.tensor([0.5, 0.25])
    out["size"][0, :, 5, 7] = torch.tensor([3.0, 2.0])  # cells: 12 x 8 px
    out["offset"][0, :, 5, 7] = torch.tensor([-2.0, 1.0])
    (d,) = sdtnet.decode(out, cfg)[0]
    assert np.allclose(d.box, [30 - 6, 21 - 4, 30 + 6, 21 + 4])
    assert np.allclose(d.offset, [[-2, 1], [-2, 1]]) and d.score == pytest.approx(0.9)


def test_embedding_pairing_recovers_two_crossing_streaks():
    cfg = SDTNetConfig(variant="full")
    # an X: A runs down-right, B up-right; their left ends share x, as do their right ends
    a = [[8.5, 8.5], [52.25, 52.75]]
    b = [[8.0, 52.0], [52.0, 8.0]]
    dets = sdtnet.decode(ideal_outputs([a, b], cfg, embeddings=[0.2, 1.3]), cfg)[0]
    got = sorted((d.endpoints.tolist() for d in dets), key=lambda e: e[0][1])
    assert np.allclose(got, [a, b], atol=1e-5)
    assert np.allclose(sorted(d.embedding.tolist() for d in dets), [[0.2, 0.2], [1.3, 1.3]])
    # the embeddings decide: with none, the first left peak takes the first right peak (A's
    # left end with B's right end, both in row 2)
    dets = sdtnet.decode(ideal_outputs([a, b], cfg, embeddings=[0.0, 0.0]), cfg)[0]
    assert not np.allclose(
        sorted((d.endpoints.tolist() for d in dets), key=lambda e: e[0][1]), [a, b]
    )


def test_reach_pairs_crossing_streaks_whose_embeddings_are_alike():
    """The partner vectors (CentripetalNet's centripetal shift, here to the other endpoint) pair
    the X of the test above where identical embeddings cannot, and a pair whose endpoints do
    not point at each other within ``reach_gate`` pixels is not made."""
    cfg = SDTNetConfig(variant="endpoints", reach_weight=1.0, pair_distance=1.0)
    a = [[8.5, 8.5], [52.25, 52.75]]
    b = [[8.0, 52.0], [52.0, 8.0]]
    out = ideal_outputs([a, b], cfg, embeddings=[0.0, 0.0], reach=True)
    dets = sdtnet.decode(out, cfg)[0]
    got = sorted((d.endpoints.tolist() for d in dets), key=lambda e: e[0][1])
    assert np.allclose(got, [a, b], atol=1e-5)
    out["reach"] = out["reach"] * 0.5  # every partner now points 22-31 px short
    assert sdtnet.decode(out, replace(cfg, reach_gate=8.0))[0] == []


def test_pair_endpoints_is_one_to_one_within_max_distance():
    pairs = sdtnet.pair_endpoints(np.array([0.0, 1.0, 5.0]), np.array([1.1, 0.1]), 0.5)
    assert pairs.tolist() == [[0, 1], [1, 0]]  # 5.0 has no partner within 0.5
    # both lefts are nearest to right 0; Hungarian gives it to the nearer one only
    pairs = sdtnet.pair_endpoints(np.array([0.0, 0.1]), np.array([0.05, 0.4]), 0.5)
    assert sorted(pairs.tolist()) == [[0, 0], [1, 1]]
    # a right endpoint far to the left of a left one is not its partner
    assert sdtnet.pair_endpoints([0.0], [0.0], 0.5, [[30, 5]], [[10, 5]], slack=4).shape == (0, 2)
    assert sdtnet.pair_endpoints(np.zeros(0), np.array([1.0]), 0.5).shape == (0, 2)


# ---------------------------------------------------------------------------- association
def _det(ends, offset=(0.0, 0.0)):
    ends = np.asarray(ends, float)
    return Detection(ends, 0.9, offset=np.tile(np.asarray(offset, float), (2, 1)))


def test_offsets_keep_ids_through_a_crossing():
    # frame 1: A on the left moving right 12 px per frame, B on the right moving left
    tracks, next_id = sdtnet.associate(
        [], [_det([[10, 30], [20, 30]]), _det([[24, 34], [34, 34]])], 20.0, 1
    )
    assert [t.track_id for t in tracks] == [1, 2] and next_id == 3
    # frame 2: they have swapped sides; B now sits nearer A's old place and vice versa
    a2, b2 = [[22, 30], [32, 30]], [[12, 34], [22, 34]]
    new, nid = sdtnet.associate(
        tracks, [_det(b2, (12, 0)), _det(a2, (-12, 0)), _det([[50, 5], [60, 8]])], 20.0, next_id
    )
    assert [d.track_id for d in new] == [2, 1, 3] and nid == 4  # far one: a new track
    # without the offsets nearest-position matching swaps the ids
    naive, _ = sdtnet.associate(tracks, [_det(b2), _det(a2)], 20.0, next_id)
    assert [d.track_id for d in naive] == [1, 2]


def test_associate_empty_cases():
    tracks, nid = sdtnet.associate([], [], 20.0, 5)
    assert tracks == [] and nid == 5
    old, _ = sdtnet.associate([], [_det([[0, 0], [4, 4]])], 20.0, 1)
    far, nid = sdtnet.associate(old, [_det([[40, 40], [50, 50]])], 20.0, 2)
    assert far[0].track_id == 2 and nid == 3  # beyond the radius: not the old track


def test_a_lost_track_keeps_its_id_through_a_missed_frame():
    # A moves right 12 px a frame (offset: -12 px to where it was); frame 2 misses it
    a1, a3 = _det([[10, 30], [20, 30]], (-12, 0)), _det([[34, 30], [44, 30]], (-12, 0))
    for max_age, want in ((1, 1), (0, 2)):
        tracks, lost, nid = sdtnet.associate_lost([], [], [a1], 5.0, max_age, 1)
        tracks, lost, nid = sdtnet.associate_lost(tracks, lost, [], 5.0, max_age, nid)
        assert tracks == [] and len(lost) == max_age
        tracks, lost, nid = sdtnet.associate_lost(tracks, lost, [a3], 5.0, max_age, nid)
        # matched where its motion carried it (24 px away, radius 5), or a new track
        assert [t.track_id for t in tracks] == [want] and lost == []
    # a track waits max_age frames, no longer
    tracks, lost, nid = sdtnet.associate_lost([], [], [a1], 5.0, 2, 1)
    for age in (1, 2):
        tracks, lost, nid = sdtnet.associate_lost(tracks, lost, [], 5.0, 2, nid)
        assert [a for _, a in lost] == [age]
    assert sdtnet.associate_lost(tracks, lost, [], 5.0, 2, nid)[1] == []


# ---------------------------------------------------------------------------- training
TINY = DebrisConfig(
    size=64, frames=3, debris=(2, 2), length=(14.0, 20.0), speed=(3.0, 5.0), stars=5,
    truncate_prob=0.0, moon_prob=0.0,
)  # fmt: skip


@pytest.fixture(scope="module")
def samples():
    frames = render_video(3, TINY)
    assert all(len(fr.track_ids) == 2 for fr in frames)  # push needs two debris per frame
    return sdtnet.samples_from_frames(frames)


@pytest.mark.parametrize("variant", sdtnet.VARIANTS)
def test_few_step_overfit_lowers_every_loss_term(samples, variant):
    reach = 0.0 if variant == "center" else 1.0  # the partner vectors as default.yaml has them
    cfg = SDTNetConfig(variant=variant, channels=32, reach_weight=reach, reach_gate=12.0)
    start = time.perf_counter()
    model, history = sdtnet.train(samples, cfg, steps=40, batch=3, lr=3e-3, seed=0)
    assert len(history) == 40 and history[0]["step"] == 1
    names = [k for k in history[0] if k != "step"]
    assert "total" in names and len(names) == (
        5 if variant == "center" else 7 + (variant == "full")
    )
    for name in names:
        first = np.mean([r[name] for r in history[:3]])
        last = np.mean([r[name] for r in history[-3:]])
        assert last < first, f"{variant}: {name} went from {first:.4f} to {last:.4f}"
    rows = sdtnet.track(model, [s.image for s in samples], cfg)
    assert rows.shape[1] == 7 and set(rows[:, 0]) <= {1, 2, 3}
    if variant != "center":  # 40 steps are enough for the endpoints to track their video
        assert len(rows) == 6
        ids: dict[int, set] = {}
        for t, s in enumerate(samples, start=1):
            here = rows[rows[:, 0] == t]
            for a in s.annotations:
                x, y, w, h = a["bbox"]
                d = np.hypot(*(here[:, 2:4] + here[:, 4:6] / 2 - [x + w / 2, y + h / 2]).T)
                assert d.min() < 3, f"frame {t}: debris {a['track_id']} missed"
                ids.setdefault(a["track_id"], set()).add(int(here[np.argmin(d), 1]))
        assert all(len(v) == 1 for v in ids.values()) and len(set.union(*ids.values())) == 2
    assert time.perf_counter() - start < 30


def test_samples_from_coco_pair_each_frame_with_its_predecessor(tmp_path):
    inst = generate_split(tmp_path, "train", 2, replace(TINY, frames=2), progress=False)
    samples = sdtnet.samples_from_coco(inst, tmp_path)
    assert len(samples) == 4
    first, second = samples[0], samples[1]
    assert first.prev_annotations == [] and np.array_equal(first.prev_image, first.image)
    assert np.array_equal(second.prev_image, first.image) and second.image.shape == (64, 64, 3)
    assert second.prev_annotations == first.annotations and len(second.annotations) == 2
    assert sdtnet.samples_from_coco({"images": [], "annotations": []}, tmp_path) == []


def test_detection_diagnosis_counts_what_a_network_finds(tmp_path):
    from afss_utils.datasets import open_coco

    inst = generate_split(tmp_path, "test", 1, replace(TINY, frames=2), progress=False)
    ds = open_coco(tmp_path / "test.json", tmp_path, name="test")
    cfg = SDTNetConfig(variant="endpoints")
    frames = sorted(inst["images"], key=lambda i: i["frame_id"])
    truth = [[a for a in inst["annotations"] if a["image_id"] == im["id"]] for im in frames]

    class Replay(torch.nn.Module):  # answers each frame, in order, with the given outputs
        def __init__(self, outputs):
            super().__init__()
            self.outputs = iter(outputs)

        def forward(self, image, prev, h_prev):
            return next(self.outputs)

    ideal = [ideal_outputs(sdtnet.endpoint_pairs(t), cfg, embeddings=[0, 5]) for t in truth]
    d = sdtnet.detection_diagnosis(Replay(ideal), cfg, ds)
    n = sum(map(len, truth))
    assert n >= 2 and d["true streaks"] == d["left found"] == d["right found"] == n
    assert d["detection recall"] == d["detection precision"] == 1.0
    # the same peaks with one embedding: the endpoints are found, their pairs are guesses
    same = [ideal_outputs(sdtnet.endpoint_pairs(t), cfg, embeddings=[0, 0]) for t in truth]
    assert sdtnet.detection_diagnosis(Replay(same), cfg, ds)["left peak recall"] == 1.0
    blind = [{k: torch.zeros_like(v) for k, v in o.items()} for o in ideal]
    d = sdtnet.detection_diagnosis(Replay(blind), cfg, ds)
    assert d["detections"] == d["left found"] == 0 and d["detection recall"] == 0.0
    with pytest.raises(ValueError, match="endpoint variant"):
        sdtnet.detection_diagnosis(Replay([]), SDTNetConfig(variant="center"), ds)


# ---------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    "key,value",
    [
        ("variant", "corners"),
        ("stride", 8),
        ("sigma", 0.0),
        ("radius", -1.0),
        ("threshold", 1.5),
        ("max_objects", 0),
        ("channels", 2.5),
        ("heatmap_weight", -1.0),
        ("offset_weight", float("nan")),
        ("backbone", ""),
        ("max_age", -1),
    ],
)
def test_bad_config_names_the_key(key, value):
    with pytest.raises(ValueError, match=f"SDTNetConfig.{key} "):
        SDTNetConfig(**{key: value})


@pytest.mark.parametrize(
    "precision,match", [("fp16", "fp16 needs a CUDA device"), ("half", "must be auto, bf16")]
)
def test_bad_training_precision_names_the_key(samples, precision, match):
    with pytest.raises(ValueError, match=f"debris.sdtnet.precision {match}"):
        sdtnet.train(samples, SDTNetConfig(channels=8), steps=1, precision=precision)


def test_unknown_backbone_names_the_key():
    with pytest.raises(ValueError, match="SDTNetConfig.backbone 'no_such_net'"):
        sdtnet.build_model(SDTNetConfig(backbone="no_such_net"))


def test_train_and_track_sdtnet_saves_weights_that_load_back(tmp_path):
    """The stage's training task: weights on disk (atomically), tracks per split and video."""
    from afss_utils.datasets import open_coco
    from afss_utils.debris.stage import train_and_track_sdtnet

    cfg = DebrisConfig(size=64, frames=3, debris=(1, 2), stars=5)
    inst = generate_split(tmp_path, "train", 2, cfg, seed=1, progress=False)
    ds = open_coco(tmp_path / "train.json", tmp_path, name="train")
    params = {"device": "cpu", "sdtnet": {"steps": 2, "batch": 2, "lr": 1e-3, "channels": 8}}
    tracks, seconds, history = train_and_track_sdtnet(
        inst, tmp_path, tmp_path / "run", params, 0, {"test_sparse": ds}
    )
    assert set(tracks) == {"test_sparse"} and set(tracks["test_sparse"]) == {
        im["video"] for im in inst["images"]
    }
    assert all(r.shape[1] == 7 for r in tracks["test_sparse"].values())
    assert len(history) == 2 and seconds > 0
    assert not list((tmp_path / "run").glob("*.tmp"))
    model, config = sdtnet.load(tmp_path / "run" / "sdtnet.pt")
    assert config.channels == 8 and not model.training
    with pytest.raises(FileNotFoundError, match="train it first"):
        sdtnet.load(tmp_path / "nothing.pt")
    with pytest.raises(KeyError, match="debris.sdtnet.depth"):
        train_and_track_sdtnet(inst, tmp_path, tmp_path / "r2", {"sdtnet": {"depth": 3}}, 0, {})


def test_mask_along_the_segment_pairs_two_close_parallel_streaks():
    """Side-by-side fragments whose embeddings do not tell them apart: the RoI mask does."""
    mask = np.zeros((16, 16))
    mask[4, 2:13] = 1.0  # streak A along row 4 (pixels y 16-19), x 8-52
    mask[6, 2:13] = 1.0  # streak B along row 6 (y 24-27): 8 px below, parallel
    lefts, rights = np.array([[9.0, 18.0], [9.0, 26.0]]), np.array([[50.0, 26.0], [50.0, 18.0]])
    line = sdtnet.segment_support(mask, lefts, rights)
    assert line[0, 1] == 1.0 and line[1, 0] == 1.0 and line[0, 0] < 0.5  # A-A, B-B on the mask
    same = np.zeros(2)  # identical embeddings: alone they pair by index order, here wrongly
    wrong = sdtnet.pair_endpoints(same, same, 2.0, lefts, rights)
    assert wrong.tolist() == [[0, 0], [1, 1]]
    right = sdtnet.pair_endpoints(same, same, 2.0, lefts, rights, line=line)
    assert right.tolist() == [[0, 1], [1, 0]]
    # no mask under any segment: no pair at all
    none = sdtnet.pair_endpoints(same, same, 2.0, lefts, rights, line=np.zeros((2, 2)))
    assert none.shape == (0, 2)
