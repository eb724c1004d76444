"""The calibration study: killed, damaged and resumed, it gives what an uninterrupted run gives.

Runs ``benchmarks/calibration_study.py`` for real (a small planted model, 4 calibration images
in spans of 2, 3 evaluation frames) three ways: uninterrupted; killed (SIGKILL of its process
group) once its first pass-2 checkpoint exists, then with its work folder damaged (a truncated
``prepared.onnx``, a truncated span checkpoint, an evaluation checkpoint of another content, a
planted ``pass1.pkl`` whose unpickling would create a marker file) and resumed. The resumed
rows equal the uninterrupted ones (mAP, per class AP, the sha256 of every quantized model,
which the calibration ranges decide); the damaged files were redone; the pickle never ran.
A work folder others can write is refused at start.
"""

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from needs import qdq_from_ranges  # noqa: E402

from tensorrt_yolox_py.devkit.synthetic import make_planted_model

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / 'benchmarks' / 'calibration_study.py'
pytestmark = pytest.mark.slow


def command(model, work, out):
    return [sys.executable, str(STUDY), '--model', str(model), '--calib', '4', '--task', '2',
            '--chunk', '2', '--eval-frames', '3', '--latency-frames', '2', '--workers', '1',
            '--threads', '1', '--work', str(work), '--out', str(out)]


def env():
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')


def rows(out):
    data = json.loads((out / 'calibration_study.json').read_text())
    return [{k: v for k, v in row.items() if not k.startswith('infer_ms')}
            for row in data['rows']]


class Payload:
    """Unpickling this creates the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp('study')
    os.chmod(base, 0o700)
    model = make_planted_model(base / 'planted.onnx', (96, 96))
    return base, model


def _named_semaphores() -> set:
    """Python multiprocessing's named semaphores in /dev/shm (Linux)."""
    shm = Path('/dev/shm')
    return set(shm.glob('sem.mp-*')) if shm.is_dir() else set()


@qdq_from_ranges
@pytest.mark.timing
def test_killed_damaged_study_resumes_to_the_uninterrupted_result(setup):
    base, model = setup
    clean = subprocess.run(command(model, base / 'work_a', base / 'out_a'), env=env(),
                           capture_output=True, text=True, timeout=600)
    assert clean.returncode == 0, clean.stderr[-3000:]
    expected = rows(base / 'out_a')
    assert len(expected) == 8 and all('model_sha256' in r for r in expected)

    work, out = base / 'work_b', base / 'out_b'
    semaphores = _named_semaphores()
    proc = subprocess.Popen(command(model, work, out), env=env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    try:
        while not list((work / 'pass2').glob('*.npz')):
            assert proc.poll() is None, 'the study ended before it could be killed'
            assert time.monotonic() < deadline, 'no pass-2 checkpoint in 300 s'
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        # The kill took multiprocessing's resource tracker with it: remove the named
        # semaphores the killed group made (nothing else ran meanwhile).
        for path in _named_semaphores() - semaphores:
            path.unlink(missing_ok=True)
    assert not (out / 'calibration_study.json').exists()

    prepared = work / 'prepared.onnx'
    prepared.write_bytes(prepared.read_bytes()[:prepared.stat().st_size // 2])
    span = sorted((work / 'pass1').glob('*.npz'))[0]
    span.write_bytes(span.read_bytes()[:40])
    (work / 'eval.json').write_text('{"FP32|0": {"mAP50": 0.99}}')
    marker = base / 'pickle_ran'
    for name in ('pass1.pkl', 'pass2.pkl', 'eval.pkl'):
        (work / name).write_bytes(pickle.dumps(Payload(str(marker))))

    resumed = subprocess.run(command(model, work, out), env=env(), capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert rows(out) == expected
    assert not marker.exists()
    log = resumed.stderr
    assert 'prepared.onnx' in log and 'truncated' in log          # redone, not trusted
    assert span.name in log
    assert 'not using evaluation checkpoint' in log
    assert json.loads((out / 'calibration_study.json').read_text())['meta'][
        'resumed_from_checkpoints'] is True


def test_work_folder_others_can_write_is_refused(setup):
    base, model = setup
    work = base / 'open'
    work.mkdir()
    os.chmod(work, 0o777)
    result = subprocess.run(command(model, work, base / 'out_c'), env=env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert 'writable by group or others' in result.stderr and 'chmod go-w' in result.stderr
    assert list(work.iterdir()) == []
