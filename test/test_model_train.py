"""YOLOX training code: SimOTA assignment, loss, data set, schedule, and a short real training."""

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip('torch')
cv2 = pytest.importorskip('cv2')

from tensorrt_yolox_py.devkit import train as train_mod  # noqa: E402
from tensorrt_yolox_py.devkit.loss import simota_assign, YoloxLoss  # noqa: E402
from tensorrt_yolox_py.model.yolox import HeadOutput, make_grids  # noqa: E402
from tensorrt_yolox_py.stages.postprocess import Detections  # noqa: E402
from tensorrt_yolox_py.image import SourceImage  # noqa: E402
from tensorrt_yolox_py.stages.preprocess import preprocess_cpu  # noqa: E402


@pytest.fixture(autouse=True, scope='module')
def _one_torch_thread():
    """Run torch on one thread (2 OpenMP threads on a busy 2-core machine can be 20x slower)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


COLORS = ((0, 0, 255), (0, 255, 0), (255, 0, 0))  # BGR red, green, blue -> classes 0, 1, 2


def make_square_items(n, seed, size=64, min_side=12, max_side=28):
    """Images (size x size BGR) on a noisy grey background, one solid coloured square each."""
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(n):
        img = (60 + rng.integers(0, 40, (size, size, 3))).astype(np.uint8)
        cls = int(rng.integers(0, len(COLORS)))
        side = int(rng.integers(min_side, max_side + 1))
        x, y = (int(v) for v in rng.integers(0, size - side + 1, 2))
        img[y:y + side, x:x + side] = COLORS[cls]
        items.append((img, np.array([[x, y, x + side, y + side]], np.float32),
                      np.array([cls], np.int64)))
    return items


def _anchors(hw):
    feature_hw = [(hw[0] // s, hw[1] // s) for s in (8, 16, 32)]
    return make_grids(feature_hw)


def _assign(pred_boxes, gt_cxcywh, labels, hw=(64, 64), num_classes=2):
    grids, strides = _anchors(hw)
    n = grids.shape[0]
    return simota_assign(pred_boxes, torch.zeros(n), torch.zeros(n, num_classes), grids,
                         strides, gt_cxcywh, labels, num_classes), grids, strides


def test_simota_hand_checkable_single_box():
    # 64x64 input: 64 stride-8, 16 stride-16 and 4 stride-32 anchors. GT centre (32, 32), size
    # 24. Every prediction is a tiny far-away box (IoU 0) except anchor 27 (stride 8, gx=3,
    # gy=3, centre (28, 28), inside the 1.5-stride centre prior), which predicts the GT exactly.
    grids, strides = _anchors((64, 64))
    pred = torch.tensor([[500.0, 500.0, 1.0, 1.0]]).repeat(grids.shape[0], 1)
    pred[27] = torch.tensor([32.0, 32.0, 24.0, 24.0])
    gt = torch.tensor([[32.0, 32.0, 24.0, 24.0]])
    a, _, _ = _assign(pred, gt, torch.tensor([1]))
    # dynamic k = int(sum of the top-10 IoUs) = int(1.0) = 1 -> exactly anchor 27.
    assert torch.nonzero(a.fg_mask).flatten().tolist() == [27]
    assert a.matched_gt.tolist() == [0]
    assert float(a.matched_iou[0]) == pytest.approx(1.0, abs=1e-5)


def test_simota_every_gt_gets_anchors_inside_its_centre_prior():
    grids, strides = _anchors((64, 64))
    centres = (grids + 0.5) * strides[:, None]
    gts = torch.tensor([[12.0, 12.0, 16.0, 16.0], [48.0, 44.0, 20.0, 28.0]])
    # Predictions: each anchor predicts a 20x20 box at its own centre (overlaps nearby GTs).
    pred = torch.cat([centres, torch.full_like(centres, 20.0)], dim=1)
    a, _, _ = _assign(pred, gts, torch.tensor([0, 1]))
    fg = torch.nonzero(a.fg_mask).flatten()
    assert set(a.matched_gt.tolist()) == {0, 1}
    for anchor, gi in zip(fg.tolist(), a.matched_gt.tolist()):
        d = (centres[anchor] - gts[gi, :2]).abs()
        assert bool((d < 1.5 * strides[anchor]).all()), (anchor, gi)


def test_simota_box_centre_outside_every_window_falls_back_to_nearest_anchor():
    grids, strides = _anchors((64, 64))
    centres = (grids + 0.5) * strides[:, None]
    gt = torch.tensor([[-60.0, 10.0, 8.0, 8.0]])  # centre far left of the image
    pred = torch.cat([centres, torch.full_like(centres, 8.0)], dim=1)
    a, _, _ = _assign(pred, gt, torch.tensor([0]))
    nearest = int(((centres - gt[0, :2]) ** 2).sum(1).argmin())
    assert torch.nonzero(a.fg_mask).flatten().tolist() == [nearest]


def test_loss_without_ground_truth_is_objectness_only():
    grids, strides = _anchors((64, 64))
    raw = torch.zeros(1, grids.shape[0], 5 + 2, requires_grad=True)
    head = HeadOutput(raw, grids, strides)
    total, parts = YoloxLoss(2)(head, [(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))])
    # BCE(logit 0, target 0) = log 2 per anchor, divided by max(num_fg, 1) = 1.
    assert float(total.detach()) == pytest.approx(grids.shape[0] * math.log(2), rel=1e-5)
    assert parts['iou'] == 0.0 and parts['cls'] == 0.0
    total.backward()
    assert torch.isfinite(raw.grad).all()
    with pytest.raises(ValueError, match='target entries'):
        YoloxLoss(2)(head, [])
    with pytest.raises(ValueError, match='classes'):
        YoloxLoss(3)(head, [(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))])


def test_dataset_uses_the_inference_letterbox_and_flips_boxes():
    img = np.full((40, 80, 3), 50, np.uint8)
    img[8:24, 10:30] = COLORS[0]
    items = [(img, np.array([[10, 8, 30, 24]], np.float32), np.array([0]))]
    data = train_mod.DetectionDataset(items, (64, 64))
    tensor, boxes, labels = data[0]
    ref, lb = preprocess_cpu(SourceImage.from_array(img), (64, 64))
    np.testing.assert_array_equal(tensor.numpy(), ref[0])
    np.testing.assert_allclose(boxes.numpy(), [[8, 6.4, 24, 19.2]], atol=1e-5)  # scale 0.8
    assert labels.tolist() == [0]
    # Forced flip, no HSV: the red square is inside the mirrored box.
    flip = train_mod.DetectionDataset(items, (64, 64), augment=True, flip_prob=1.0,
                                      hsv_gains=(0, 0, 0))
    t, b, _, _ = flip.load(0, np.random.default_rng(0))
    np.testing.assert_allclose(b, [[40, 6.4, 56, 19.2]], atol=1e-5)
    x1, y1, x2, y2 = (int(round(v)) for v in b[0])
    inside = t[0, :, y1 + 1:y2 - 1, x1 + 1:x2 - 1]
    assert np.all(inside[2] > 200) and np.all(inside[0] < 60)  # R plane high, B plane low
    # Flipping the letterboxed region equals letterboxing the flipped source (exactly).
    noisy = np.random.default_rng(3).integers(0, 256, (97, 131, 3), dtype=np.uint8)
    nflip = train_mod.DetectionDataset([(noisy, np.zeros((0, 4)), np.zeros(0))], (64, 96),
                                       augment=True, flip_prob=1.0, hsv_gains=(0, 0, 0))
    ref_flip, _ = preprocess_cpu(SourceImage.from_array(noisy[:, ::-1]), (64, 96))
    np.testing.assert_array_equal(nflip.load(0, np.random.default_rng(0))[0], ref_flip)
    # The in-memory cache gives the same samples.
    nflip.build_cache(2)
    np.testing.assert_array_equal(nflip.load(0, np.random.default_rng(0))[0], ref_flip)
    np.testing.assert_array_equal(nflip.load(0)[0],
                                  preprocess_cpu(SourceImage.from_array(noisy), (64, 96))[0])
    # HSV jitter changes colours but keeps the geometry.
    hsv = train_mod.DetectionDataset(items, (64, 64), augment=True, flip_prob=0.0)
    t2, b2, _, _ = hsv.load(0, np.random.default_rng(1))
    np.testing.assert_allclose(b2, [[8, 6.4, 24, 19.2]], atol=1e-5)
    assert not np.array_equal(t2, ref)
    with pytest.raises(ValueError, match='boxes but'):
        train_mod.DetectionDataset([(img, np.zeros((2, 4)), np.zeros(1))], (64, 64))[0]
    with pytest.raises(ValueError, match='uint8'):
        train_mod.DetectionDataset([(img.astype(np.float32), np.zeros((0, 4)),
                                     np.zeros(0))], (64, 64))[0]


def test_lr_schedule_warmup_then_cosine():
    lrs = [train_mod.lr_at(s, 100, 10, 1.0, 0.05) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0)
    assert lrs[55] == pytest.approx(0.05 + 0.95 * 0.5, rel=1e-3)  # half way: mean of ends
    assert train_mod.lr_at(100, 100, 10, 1.0, 0.05) == pytest.approx(0.05)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    # A wall-clock budget that is 80 % used pushes the cosine to 80 % even at step 20.
    assert train_mod.lr_at(20, 100, 10, 1.0, 0.05, time_fraction=0.8) == pytest.approx(
        0.05 + 0.95 * 0.5 * (1 + math.cos(0.8 * math.pi)))


def test_time_budget_stops_training_and_still_saves(tmp_path):
    cfg = train_mod.TrainConfig(variant='yolox-tiny-test', input_hw=(64, 64), batch=4,
                                epochs=50, workers=0, export=False, time_budget_s=0.01,
                                out=str(tmp_path / 'run'), log_interval=0)
    # Training data streamed from a generator: letterboxed on arrival, sources dropped.
    stream = train_mod.DetectionDataset.from_stream(iter(make_square_items(8, 4)), (64, 64))
    assert len(stream) == 8 and stream.items[0][0].startswith('<stream')
    ref = make_square_items(8, 4)[0][0]
    np.testing.assert_array_equal(stream.load(0)[0],
                                  preprocess_cpu(SourceImage.from_array(ref), (64, 64))[0])
    summary = train_mod.Trainer(cfg, stream, make_square_items(2, 5),
                                ['red', 'green', 'blue']).fit()
    assert summary['stopped_by_time_budget'] and summary['steps'] == 1
    assert len(summary['history']) == 1 and 'val' in summary['history'][0]
    assert (tmp_path / 'run' / 'best.pt').is_file()


def test_coco_metrics_perfect_and_shifted():
    items = make_square_items(4, 5)
    perfect = [Detections(b.astype(np.float32), np.ones(1, np.float32), lab.astype(np.int32))
               for _, b, lab in items]
    m = train_mod.coco_metrics(items, perfect, ['r', 'g', 'b'])
    assert m['mAP50'] == pytest.approx(1.0) and m['mAP'] == pytest.approx(1.0)
    wrong = [Detections(d.boxes, d.scores, (d.class_ids + 1) % 3) for d in perfect]
    assert train_mod.coco_metrics(items, wrong, ['r', 'g', 'b'])['mAP50'] == 0.0


def test_a_few_training_steps_reduce_the_loss():
    items = make_square_items(16, 0)
    cfg = train_mod.TrainConfig(variant='yolox-tiny-test', input_hw=(64, 64), batch=16,
                                workers=0, lr=1e-2, ema=False, augment=False, export=False)
    trainer = train_mod.Trainer(cfg, items, class_names=['red', 'green', 'blue'])
    images, targets = train_mod.collate([trainer.train_set[i] for i in range(len(items))])
    losses = [trainer.train_step(images, targets)['loss'] for _ in range(15)]
    assert all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-3:]) < 0.65 * losses[0], losses


def _write_coco(folder, items, names):
    folder.mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i, (img, boxes, labels) in enumerate(items):
        name = f'img_{i:03d}.png'
        cv2.imwrite(str(folder / name), img)
        images.append({'id': i + 1, 'file_name': name, 'width': img.shape[1],
                       'height': img.shape[0]})
        for b, lab in zip(boxes, labels):
            anns.append({'id': len(anns) + 1, 'image_id': i + 1, 'category_id': int(lab) + 1,
                         'bbox': [float(b[0]), float(b[1]), float(b[2] - b[0]),
                                  float(b[3] - b[1])], 'area': 1.0, 'iscrowd': 0})
    cats = [{'id': k + 1, 'name': n} for k, n in enumerate(names)]
    path = folder / 'annotations.json'
    path.write_text(json.dumps({'images': images, 'annotations': anns, 'categories': cats}))
    return path


@pytest.mark.slow
def test_yolox_train_cli_trains_exports_and_detects(tmp_path):
    from tensorrt_yolox_py.backends.onnxruntime_backend import OnnxRuntimeBackend
    from tensorrt_yolox_py.devkit.export import compare_with_onnxruntime, load_checkpoint
    from tensorrt_yolox_py.pipeline import Detector
    from tensorrt_yolox_py.stages.postprocess import Postprocessor
    from tensorrt_yolox_py.stages.preprocess import CpuPreprocessor

    names = ['red', 'green', 'blue']
    train_json = _write_coco(tmp_path / 'train', make_square_items(64, 1), names)
    val_items = make_square_items(12, 2)
    val_json = _write_coco(tmp_path / 'val', val_items, names)
    items, got_names = train_mod.load_coco(train_json)
    assert got_names == names and len(items) == 64 and items[0][2].tolist()[0] in (0, 1, 2)
    out = tmp_path / 'run'
    from tensorrt_yolox_py.devkit.tools.train import main as train_main

    assert train_main(['--variant', 'yolox-tiny-test', '--input-size', '64', '64',
                       '--epochs', '24', '--batch', '16', '--lr', '4e-3', '--data',
                       str(train_json), '--val-data', str(val_json), '--out', str(out),
                       '--device', 'cpu', '--workers', '0', '--eval-interval', '12',
                       '--log-interval', '0', '--cache']) == 0
    for name in ('best.pt', 'last.pt', 'model.onnx', 'labels.txt', 'train_summary.json'):
        assert (out / name).is_file(), name
    summary = json.loads((out / 'train_summary.json').read_text())
    assert summary['class_names'] == names and len(summary['history']) == 24
    assert summary['history'][-1]['loss'] < 0.5 * summary['history'][0]['loss']
    assert summary['best_val']['mAP50'] >= 0.6, summary['best_val']
    # The exported ONNX is the best checkpoint's EMA model.
    model = load_checkpoint(str(out / 'best.pt'))
    img = np.random.default_rng(0).uniform(0, 255, (1, 3, 64, 64)).astype(np.float32)
    diff = compare_with_onnxruntime(model, str(out / 'model.onnx'), [img])
    assert diff['max_abs_diff_scores'] < 1e-4 and diff['max_abs_diff_reg'] < 1e-3
    # And it runs in the package's Detector and finds the squares (source images 2x larger).
    backend = OnnxRuntimeBackend(out / 'model.onnx')
    with Detector(backend, CpuPreprocessor((64, 64)), Postprocessor((64, 64), 0.3, 0.5),
                  names) as det:
        hits = 0
        for img, boxes, labels in val_items[:8]:
            big = cv2.resize(img, (128, 128), interpolation=cv2.INTER_NEAREST)
            res = det.detect(SourceImage.from_array(big)).detections
            if len(res) and res.class_ids[0] == labels[0]:
                b, g = res.boxes[0], boxes[0] * 2
                inter = (max(0, min(b[2], g[2]) - max(b[0], g[0]))
                         * max(0, min(b[3], g[3]) - max(b[1], g[1])))
                union = (b[2] - b[0]) * (b[3] - b[1]) + (g[2] - g[0]) * (g[3] - g[1]) - inter
                hits += inter / union > 0.5
    assert hits >= 6, hits
