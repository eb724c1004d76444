"""Cross-camera batching on the CPU: Detector.detect_batch, the collector and the scheduler.

The fake backend is a real ``Backend`` whose answer is computed from its input: for each
image of the batch one decoded detection whose centre x is the mean of the image's first
(blue) plane, so a result that reaches the wrong camera, or a batch that mixes images up, is
seen. It records every call's batch size. Timing checks use a logical clock (the collector)
or bounds with large margins (the threaded scheduler).
"""

import threading
import time
from dataclasses import replace

import numpy as np
import pytest

from tensorrt_yolox_py.backends.base import Backend
from tensorrt_yolox_py.batching import (BatchCollector, BatchScheduler, Frame, FrameDropped,
                                        group_cameras, group_key, Ticket)
from tensorrt_yolox_py.errors import InputError
from tensorrt_yolox_py.image import SourceImage
from tensorrt_yolox_py.params import make_config
from tensorrt_yolox_py.pipeline import Detector
from tensorrt_yolox_py.stages.postprocess import Postprocessor
from tensorrt_yolox_py.stages.preprocess import CpuPreprocessor

SIZE = 64
POISON = 13  # an image of this value passes validation but makes the fake backend fail


class FakeBackend(Backend):
    """One decoded detection per image: centre x = mean of the blue plane; see module doc."""

    name = 'fake'

    def __init__(self, max_batch=4, delay_s=0.0):
        super().__init__()
        self.capabilities = replace(self.capabilities, max_batch=max_batch)
        self.input_shape = (1, 3, SIZE, SIZE)
        self.output_shape = (1, 1, 6)
        self.calls = []
        self.delay_s = delay_s
        self.gate = None            # a threading.Event that inference waits for, if set

    def _infer_impl(self, tensor):
        self.calls.append(int(tensor.shape[0]))
        if self.gate is not None:
            assert self.gate.wait(60)
        if self.delay_s:
            time.sleep(self.delay_s)
        means = tensor[:, 0].reshape(tensor.shape[0], -1).mean(axis=1)
        if np.any(np.abs(means - POISON) < 0.5):
            raise RuntimeError('poisoned batch')
        out = np.zeros((tensor.shape[0], 1, 6), np.float32)
        out[:, 0, 0] = means
        out[:, 0, 1] = SIZE / 2
        out[:, 0, 2:4] = 4.0
        out[:, 0, 4:6] = 1.0
        return out


def _detector(max_batch=4, delay_s=0.0):
    backend = FakeBackend(max_batch, delay_s)
    post = Postprocessor((SIZE, SIZE), 0.5, 0.7, 10, 'decoded')
    return Detector(backend, CpuPreprocessor((SIZE, SIZE)), post, ['thing'])


def _image(value):
    return SourceImage.from_array(np.full((SIZE, SIZE, 3), value, np.uint8))


def _centre_x(result):
    boxes = result.detections.boxes
    assert boxes.shape == (1, 4)
    return float(boxes[0, 0] + boxes[0, 2]) / 2


# ---- Detector.detect_batch -------------------------------------------------------------

def test_detect_batch_one_call_results_in_order():
    det = _detector(max_batch=4)
    values = [10, 20, 30]
    results = det.detect_batch([_image(v) for v in values])
    assert det.backend.calls == [3]
    assert [round(_centre_x(r)) for r in results] == values
    assert all(r.batch_size == 3 for r in results)
    assert set(results[0].timings) == {'preprocess', 'infer', 'postprocess', 'total'}


def test_detect_batch_chunks_by_the_backend_max_batch():
    det = _detector(max_batch=2)
    values = [5, 15, 25, 35, 45]
    results = det.detect_batch([_image(v) for v in values])
    assert det.backend.calls == [2, 2, 1]
    assert [round(_centre_x(r)) for r in results] == values


def test_detect_batch_names_the_bad_image():
    det = _detector()
    with pytest.raises(InputError, match='image 1: expected a SourceImage'):
        det.detect_batch([_image(10), np.zeros((4, 4), np.uint8)])
    with pytest.raises(InputError, match='at least one image'):
        det.detect_batch([])
    assert det.backend.calls == []


def test_backend_refuses_a_batch_above_its_max():
    backend = FakeBackend(max_batch=2)
    with pytest.raises(InputError, match='batch 1..2'):
        backend.infer(np.zeros((3, 3, SIZE, SIZE), np.float32))


def test_detect_batch_equals_detect_on_the_planted_model(planted_model):
    config = make_config({'model_path': str(planted_model), 'device': 'cpu',
                          'backend': 'onnxruntime', 'max_batch': 4})
    with Detector.from_config(config) as det:
        assert det.backend.capabilities.max_batch == 4
        rng = np.random.default_rng(3)
        images = []
        for k in range(3):
            image = rng.integers(40, 200, (640, 960, 3), dtype=np.uint8)
            image[96 * k:96 * k + 96, 192:288] = (0, 0, 255)
            images.append(SourceImage.from_array(image))
        batched = det.detect_batch(images)
        for image, result in zip(images, batched):
            single = det.detect(image).detections
            assert result.detections.class_ids.tolist() == single.class_ids.tolist() == [1]
            np.testing.assert_allclose(result.detections.boxes, single.boxes, atol=1e-4)
            np.testing.assert_allclose(result.detections.scores, single.scores, atol=1e-5)


# ---- BatchCollector (logical clock) ----------------------------------------------------

def _frame(camera, t, value=10, header=None):
    return Frame(camera, _image(value), header, t)


def test_collector_newest_frame_wins():
    col = BatchCollector(max_batch=4, max_wait_s=1.0)
    assert col.submit(_frame('a', 0.0, header=1)) is None
    dropped = col.submit(_frame('a', 0.1, header=2))
    assert dropped.header == 1
    assert [f.header for f in col.take()] == [2]


def test_collector_waits_for_expected_cameras_at_most_the_bound():
    col = BatchCollector(max_batch=4, max_wait_s=0.010, silent_after_s=5.0)
    for cam in 'abc':
        col.submit(_frame(cam, 0.0))
    col.take()                        # a, b and c are now known (expected)
    col.submit(_frame('a', 1.000))
    col.submit(_frame('b', 1.002))
    assert not col.ready(1.005)       # c is expected: wait for it ...
    assert col.ready(1.010)           # ... but never past a's bound
    col.submit(_frame('c', 1.006))
    assert col.ready(1.006)           # everyone expected is here: no need to wait
    assert [f.camera for f in col.take()] == ['a', 'b', 'c']    # oldest first


def test_collector_stops_waiting_for_a_silent_camera():
    col = BatchCollector(max_batch=4, max_wait_s=0.010, silent_after_s=0.5)
    col.submit(_frame('a', 0.0))
    col.submit(_frame('b', 0.0))
    col.take()
    col.submit(_frame('a', 2.0))      # b has been silent for 2 s
    assert col.expected(2.0) == ['a']
    assert col.ready(2.0)             # a runs at once, not after the wait bound


def test_collector_caps_the_batch_and_keeps_the_rest():
    col = BatchCollector(max_batch=2, max_wait_s=1.0)
    for k, cam in enumerate('abc'):
        col.submit(_frame(cam, 0.1 * k))
    assert col.ready(0.2)             # max_batch frames pending
    assert [f.camera for f in col.take()] == ['a', 'b']
    assert col.pending == 1 and [f.camera for f in col.take()] == ['c']
    with pytest.raises(ValueError):
        BatchCollector(max_batch=0, max_wait_s=0.0)


# ---- BatchScheduler (threads, real clock, generous bounds) -----------------------------

class _Sink:
    def __init__(self):
        self.results = []
        self.cond = threading.Condition()

    def __call__(self, outcome):
        with self.cond:
            self.results.append(outcome)
            self.cond.notify_all()

    def wait_for(self, count, timeout=30.0):
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.results) >= count, timeout), \
                f'got {len(self.results)} of {count} results'
        return list(self.results)


def test_scheduler_batches_cameras_and_returns_each_frame_its_header():
    det = _detector(max_batch=4, delay_s=0.05)
    sink = _Sink()
    values = {'cam0': 10, 'cam1': 20, 'cam2': 30, 'cam3': 40}
    with BatchScheduler(det, sink, max_wait_s=0.5) as sched:
        for rnd in range(3):
            for cam, value in values.items():
                sched.submit(cam, _image(value + rnd), header=(cam, rnd))
            sink.wait_for(4 * (rnd + 1) - sched.stats.dropped)
        results = sink.wait_for(sched.stats.submitted - sched.stats.dropped)
    assert all(r.error is None for r in results)
    for r in results:
        cam, rnd = r.header
        assert r.camera == cam
        assert round(_centre_x(r.result)) == values[cam] + rnd
    assert max(det.backend.calls) > 1                  # cameras did share calls
    for cam in values:                                  # per camera, frames in order
        rounds = [r.header[1] for r in results if r.camera == cam]
        assert rounds == sorted(rounds)


@pytest.mark.timing
def test_scheduler_newest_wins_while_busy():
    det = _detector(max_batch=1)
    det.backend.gate = threading.Event()
    sink = _Sink()
    with BatchScheduler(det, sink, max_wait_s=0.0) as sched:
        sched.submit('cam0', _image(10), header=0)
        deadline = time.monotonic() + 30
        while not det.backend.calls and time.monotonic() < deadline:
            time.sleep(0.01)                            # until frame 0 is being inferred
        for k in range(1, 6):
            sched.submit('cam0', _image(10 + k), header=k)
        det.backend.gate.set()
        sink.wait_for(2)
        time.sleep(0.3)
        results = list(sink.results)
    assert [r.header for r in results] == [0, 5]
    assert sched.stats.dropped == 4 and sched.stats.dropped_by_camera == {'cam0': 4}


@pytest.mark.timing
def test_scheduler_wait_bound_and_silent_camera():
    det = _detector(max_batch=4)
    sink = _Sink()
    wait = 0.3
    with BatchScheduler(det, sink, max_wait_s=wait, silent_after_s=60.0) as sched:
        sched.submit('a', _image(10), header='a0')
        sched.submit('b', _image(20), header='b0')
        sink.wait_for(2)
        start = time.monotonic()
        sched.submit('a', _image(11), header='a1')     # b stays silent from now on
        first = sink.wait_for(3)[-1]
        elapsed = time.monotonic() - start
    assert first.header == 'a1' and first.error is None
    assert first.waited_s >= wait * 0.99               # waited for b, up to the bound ...
    assert elapsed < wait + 10.0                        # ... and not forever (loaded CI)


def test_scheduler_bad_frame_does_not_cost_the_others_theirs():
    det = _detector(max_batch=4, delay_s=0.05)
    sink = _Sink()
    with BatchScheduler(det, sink, max_wait_s=0.5) as sched:
        sched.submit('good0', _image(10), header='g0')
        with pytest.raises(InputError, match='camera broken: expected a SourceImage'):
            sched.submit('broken', np.zeros((4, 5, 3), np.uint8), header='bad')
        sched.submit('poison', _image(POISON), header='p')
        sched.submit('good1', _image(30), header='g1')
        results = {r.header: r for r in sink.wait_for(3)}
    assert set(results) == {'g0', 'p', 'g1'}
    assert isinstance(results['p'].error, RuntimeError)
    assert round(_centre_x(results['g0'].result)) == 10
    assert round(_centre_x(results['g1'].result)) == 30
    assert sched.stats.failed == 1 and sched.stats.processed == 2
    assert sched.stats.submitted == 3


def test_request_returns_the_frames_ticket():
    det = _detector(max_batch=4)
    with BatchScheduler(det, None, max_wait_s=0.0) as sched:
        tickets = {value: sched.request(f'cam{value}', _image(value), header=value)
                   for value in (10, 20)}
        for value, ticket in tickets.items():
            outcome = ticket.wait(30)
            assert ticket.done and outcome is not None and outcome.error is None
            assert outcome.header == value and outcome.camera == f'cam{value}'
            assert round(_centre_x(outcome.result)) == value
    assert Ticket().wait(0.01) is None                  # not completed: None after the wait


@pytest.mark.timing
def test_dropped_ticketed_frames_complete_with_frame_dropped():
    det = _detector(max_batch=1)
    det.backend.gate = threading.Event()
    with BatchScheduler(det, None, max_wait_s=0.0) as sched:
        first = sched.request('cam0', _image(10))
        deadline = time.monotonic() + 30
        while not det.backend.calls and time.monotonic() < deadline:
            time.sleep(0.01)                            # until frame 0 is being inferred
        replaced = sched.request('cam0', _image(11))
        newest = sched.request('cam0', _image(12))
        dropped = replaced.wait(0)                      # completed at once, not after 120 s
        assert isinstance(dropped.error, FrameDropped) and 'replaced' in str(dropped.error)
        det.backend.gate.set()
        assert round(_centre_x(first.wait(30).result)) == 10
        assert round(_centre_x(newest.wait(30).result)) == 12
        det.backend.gate.clear()
        busy = sched.request('cam1', _image(20))       # inferred, blocked at the gate ...
        while len(det.backend.calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        pending = sched.request('cam2', _image(30))    # ... so this one waits in the queue
        closer = threading.Thread(target=sched.close)
        closer.start()
        outcome = pending.wait(30)
        det.backend.gate.set()
        closer.join(30)
    assert isinstance(outcome.error, FrameDropped) and 'closed' in str(outcome.error)
    assert busy.wait(30).error is None


def test_scheduler_survives_a_failing_consumer():
    det = _detector()
    seen = []

    def consumer(outcome):
        seen.append(outcome.header)
        raise ValueError('consumer bug')

    with BatchScheduler(det, consumer, max_wait_s=0.0) as sched:
        sched.submit('a', _image(10), header=1)
        deadline = time.monotonic() + 30
        while len(seen) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        sched.submit('a', _image(10), header=2)
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert seen == [1, 2]
    with pytest.raises(RuntimeError, match='closed'):
        sched.submit('a', _image(10))


def test_group_key_keeps_dla_cameras_alone():
    gpu = make_config({'device': 'gpu', 'max_batch': 4})
    configs = {'c0': gpu, 'c1': gpu, 'c2': make_config({'device': 'dla0'}),
               'c3': gpu.replace(score_threshold=0.5)}
    assert group_key(configs['c2']) is None
    groups = sorted(sorted(g) for g in group_cameras(configs))
    assert groups == [['c0', 'c1'], ['c2'], ['c3']]
