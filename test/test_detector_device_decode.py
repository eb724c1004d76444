"""The Detector's device-decode branch on the CPU: the same detections as the host branch.

On a GPU the torch backend decodes inside its captured work (``Backend.infer_decoded``) and the
Detector turns candidates into detections (``Postprocessor.from_candidates``), or the full
output when more anchors pass than the top-k kept. Here a backend runs the bundled model with
ONNX Runtime and the real decode head (``backends.torch_decode.DecodeHead``) on CPU torch, so
the Detector's branch (device lock, ``input_tensor``, per-image candidates or full rows, result
times) runs in CI. Reference: the same Detector's host branch on the bundled bag's frames.
"""

from dataclasses import replace
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import pytest

torch = pytest.importorskip('torch')
pytest.importorskip('onnxruntime')
pytest.importorskip('rosbags')

from tensorrt_yolox_py.backends.base import DecodedBatch  # noqa: E402
from tensorrt_yolox_py.backends.onnxruntime_backend import OnnxRuntimeBackend  # noqa: E402
from tensorrt_yolox_py.backends.torch_decode import DecodeHead  # noqa: E402
from tensorrt_yolox_py.data.rosbag_io import read_images  # noqa: E402
from tensorrt_yolox_py.params import DEFAULT_MODEL_PATH, PACKAGE_DIR  # noqa: E402
from tensorrt_yolox_py.pipeline import Detector  # noqa: E402
from tensorrt_yolox_py.stages.postprocess import Postprocessor  # noqa: E402
from tensorrt_yolox_py.stages.preprocess import CpuPreprocessor  # noqa: E402

BAG = PACKAGE_DIR / 'data' / 'sample' / 'demo_bag'


class DecodingOrtBackend(OnnxRuntimeBackend):
    """ONNX Runtime inference, then the torch backend's decode head on CPU tensors."""

    def __init__(self, top_k: int) -> None:
        super().__init__(DEFAULT_MODEL_PATH, max_batch=4)
        self.capabilities = replace(self.capabilities, device_decode=True)
        self.top_k = top_k
        self.head: Optional[DecodeHead] = None
        self.locks = 0
        self.asked: List[int] = []
        self.full_rows = 0

    def configure_decode(self, score_threshold: float, output_format: str) -> str:
        fmt = 'raw' if output_format == 'auto' else output_format
        self.head = DecodeHead(self.input_hw, score_threshold, self.top_k, fmt)
        return fmt

    def input_tensor(self, batch: int) -> None:
        self.asked.append(batch)
        return None           # no static device input: the preprocessor makes its own

    def device_lock(self) -> Any:
        backend = self

        class Counting:
            def __enter__(self) -> None:
                backend.locks += 1

            def __exit__(self, *exc: object) -> None:
                pass

        return Counting()

    def _infer_decoded_impl(self, tensor: Any) -> DecodedBatch:
        out = self._infer_impl(np.ascontiguousarray(tensor.array))
        cands, counts = self.head(torch.from_numpy(out))
        counts = counts.numpy()
        raw = {int(i): out[int(i)] for i in np.flatnonzero(counts > self.top_k)}
        self.full_rows += len(raw)
        return DecodedBatch(cands.numpy(), counts, raw)


class WritingCpuPreprocessor(CpuPreprocessor):
    """The CPU preprocessor declared able to write a backend's input (``out``)."""

    writes_device_tensors = True

    def run(self, sources: Sequence[Any], out: Optional[Any] = None, **kw: Any
            ) -> Tuple[Any, list]:
        assert out is None
        return super().run(sources, **kw)


def _detector(backend: Any, preprocessor: Any) -> Detector:
    post = Postprocessor(backend.input_hw, 0.3, 0.45, 100, 'auto')
    return Detector(backend, preprocessor, post, [f'c{i}' for i in range(backend.num_classes)])


@pytest.fixture(scope='module')
def frames() -> List[Any]:
    return [image.source for image in list(read_images(BAG))[:6]]


@pytest.mark.parametrize('top_k', [1024, 3])
def test_device_decode_branch_equals_the_host_branch_on_the_bag(frames, top_k):
    host_backend = OnnxRuntimeBackend(DEFAULT_MODEL_PATH, max_batch=4)
    host = _detector(host_backend, CpuPreprocessor(host_backend.input_hw))
    backend = DecodingOrtBackend(top_k)
    device = _detector(backend, WritingCpuPreprocessor(backend.input_hw))
    try:
        assert device._device_decode and not host._device_decode
        want = host.detect_batch(frames)
        got = device.detect_batch(frames)
    finally:
        host.close()
        device.close()
    assert backend.asked == [4, 2] and backend.locks == 2     # chunks of max_batch, locked
    assert [r.batch_size for r in got] == [4] * 4 + [2] * 2
    # top-k 3: every frame has more passing anchors, so each takes the full-output branch
    assert backend.full_rows == (6 if top_k == 3 else 0)
    for w, g in zip(want, got):
        assert g.letterbox == w.letterbox
        assert set(g.timings) == {'preprocess', 'infer', 'postprocess', 'total'}
        assert len(w.detections) > 0
        np.testing.assert_array_equal(g.detections.class_ids, w.detections.class_ids)
        np.testing.assert_allclose(g.detections.scores, w.detections.scores, rtol=1e-6)
        np.testing.assert_allclose(g.detections.boxes, w.detections.boxes, atol=1e-3)
