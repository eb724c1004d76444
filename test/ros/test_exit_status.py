"""Every row of the exit-status table (docs/ros_interface.md), through the console scripts.

Each start-up failure must give exactly one ``yolox: error:`` line naming the problem (no
traceback, no rcl error log) and the documented status; signals (status 0) are covered by
test_shutdown_stress.py.
"""

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List

import pytest
import yaml
from conftest import REPO, subprocess_env

from tensorrt_yolox_py.ros import lifecycle

pytestmark = pytest.mark.ros
CPU = ['-p', 'device:=cpu', '-p', 'preprocess_on_gpu:=false']


def _run(entry: str, args: List[str]) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / entry
    command = [str(script)] if script.exists() else [
        sys.executable, '-c', f'from tensorrt_yolox_py.ros.entry_points import {entry}; {entry}()']
    return subprocess.run(command + args, env=subprocess_env(), capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope='module')
def files(tmp_path_factory: pytest.TempPathFactory, planted_model: Path) -> dict:
    from tensorrt_yolox_py.onnx_model import integrity

    tmp = tmp_path_factory.mktemp('exit_status')
    stamped = tmp / 'stamped.onnx'
    integrity.stamp_file(planted_model, stamped)
    data = bytearray(stamped.read_bytes())
    weights = max(pytest.importorskip('onnx').load(str(stamped)).graph.initializer,
                  key=lambda t: len(t.raw_data)).raw_data
    at = data.find(weights) + len(weights) // 2
    assert at > len(weights) // 2
    data[at:at + 64] = bytes(b ^ 0xFF for b in data[at:at + 64])
    (tmp / 'corrupted.onnx').write_bytes(bytes(data))
    (tmp / 'not_yaml.yaml').write_text('a: [1, 2\n')
    (tmp / 'empty_labels.txt').write_text('\n')
    camera = {'name': 'front', 'image_topic': '/front/image', 'device': 'cpu'}
    (tmp / 'dup_cameras.yaml').write_text(yaml.safe_dump({'cameras': [camera, camera]}))
    rear = {'name': 'rear', 'image_topic': '/rear/image', 'device': 'cpu',
            'parameters': {'model_path': '/nonexistent/rear.onnx'}}
    (tmp / 'bad_model_cameras.yaml').write_text(yaml.safe_dump({
        'parameters': {'preprocess_on_gpu': False, 'num_threads': 1},
        'cameras': [camera, rear]}))
    return {'tmp': str(tmp), 'planted': str(planted_model)}


# (entry point, arguments, status, text of the one error line); {tmp}/{planted} from `files`.
ROWS = [
    ('yolox_node', CPU + ['-p', 'model_path:=/nonexistent/m.onnx'], 1, '/nonexistent/m.onnx'),
    ('yolox_node', CPU + ['-p', 'model_path:={tmp}/corrupted.onnx'], 1,
     'corrupted.onnx fails its checksum'),
    ('yolox_node', CPU + ['-p', 'label_path:=/nonexistent/labels.txt'], 1,
     'cannot read label file /nonexistent/labels.txt'),
    ('yolox_node', CPU + ['-p', 'label_path:={tmp}/empty_labels.txt'], 1, 'has no labels'),
    ('yolox_node', ['--params-file', '/nonexistent.yaml'], 1,
     'ROS parameter file /nonexistent.yaml: cannot open it'),
    ('yolox_node', ['--params-file', '{tmp}/not_yaml.yaml'], 1,
     'ROS parameter file {tmp}/not_yaml.yaml'),
    ('yolox_node', CPU + ['-p', 'score_threshold:=2.0'], 2,
     "parameter 'score_threshold': 2.0 is above the maximum"),
    ('yolox_node', CPU + ['-p', 'dla_core_id:=0'], 2, "parameter 'dla_core_id'"),
    ('yolox_node', ['-r', 'bad'], 2, "ROS arguments: Couldn't parse remap rule: '-r bad'"),
    ('yolox_node', ['-p'], 2, "ROS arguments: Couldn't parse trailing -p flag"),
    ('yolox_node', ['--no-such-flag', '-x'], 2,
     'ROS arguments: unknown ROS argument(s) --no-such-flag -x'),
    ('yolox_multi_camera', ['--cameras', '/nonexistent/cameras.yaml'], 1,
     'cannot read cameras file /nonexistent/cameras.yaml'),
    ('yolox_multi_camera', ['--cameras', '{tmp}/not_yaml.yaml'], 1, 'is not valid YAML'),
    ('yolox_multi_camera', ['--cameras', '{tmp}/dup_cameras.yaml'], 2, 'duplicate'),
    # All or nothing: one camera that cannot start stops every camera, named in the error.
    ('yolox_multi_camera', ['--cameras', '{tmp}/bad_model_cameras.yaml'], 1,
     "camera 'rear': model file /nonexistent/rear.onnx not found"),
    ('yolox_multi_camera', [], 2, 'the following arguments are required: --cameras'),
    ('yolox_multi_camera', ['--cameras', '{tmp}/dup_cameras.yaml', '--threads', '3'], 2,
     'unrecognized arguments: --threads 3'),
    ('yolox_multi_camera', ['--cameras', str(REPO / 'config' / 'cameras.yaml'),
                            '--params-file', '/nonexistent.yaml'], 1,
     'cannot read parameter file /nonexistent.yaml'),
]


def _args(entry: str, args: List[str], files: dict) -> List[str]:
    return (['--ros-args'] if entry == 'yolox_node' else []) + [a.format(**files) for a in args]


@pytest.fixture(scope='module')
def outcomes(files: dict) -> List[subprocess.CompletedProcess]:
    """Run every row at once (each is a process start: seconds of imports on 2 cores)."""
    pytest.importorskip('rclpy')
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda row: _run(row[0], _args(row[0], row[1], files)), ROWS))


@pytest.mark.parametrize('index', range(len(ROWS)),
                         ids=[f'{r[0]}-{r[2]}-{i}' for i, r in enumerate(ROWS)])
def test_startup_failure_gives_one_line_and_its_status(files: dict, outcomes: list,
                                                       index: int) -> None:
    _, _, status, text = ROWS[index]
    result = outcomes[index]
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith('yolox: error:')]
    assert result.returncode == status, result.stderr[-2000:]
    assert len(errors) == 1, result.stderr[-2000:]
    assert text.format(**files) in errors[0]
    assert 'Traceback' not in result.stderr and '[ERROR]' not in result.stderr


def test_build_only_ends_with_status_0(files: dict) -> None:
    pytest.importorskip('rclpy')
    result = _run('yolox_node', ['--ros-args'] + CPU + ['-p', 'build_only:=true', '-p',
                                                        f'model_path:={files["planted"]}'])
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'build_only is true' in result.stderr


def _docs_exit_table() -> dict:
    text = (REPO / 'docs' / 'ros_interface.md').read_text()
    section = text[text.index('| exit status |'):]
    rows = {}
    for line in section.splitlines()[2:]:
        if not line.startswith('|'):
            break
        status = line.split('|')[1].strip().strip('`')
        rows[status] = line
    return rows


def test_exit_status_table_matches_the_code() -> None:
    rows = _docs_exit_table()
    assert set(rows) >= {str(lifecycle.EXIT_OK), str(lifecycle.EXIT_FILE_ERROR),
                         str(lifecycle.EXIT_CONFIG_ERROR)}
    assert {int(r[2]) for r in ROWS} | {0} == {int(s) for s in rows if s.isdigit()}
    assert re.search(r'label file', rows['1']) and re.search(r'checksum', rows['1'])
    assert re.search(r'parameter value', rows['2']) and '--ros-args' in rows['2']
    assert 'SIGINT' in rows['0'] and 'SIGTERM' in rows['0']
    assert '| exit status |' not in (REPO / 'README.md').read_text()   # one place only


def test_device_cpu_never_mentions_cuda(files: dict) -> None:
    """``device: cpu`` with every other parameter at its default (preprocess_on_gpu true)."""
    pytest.importorskip('rclpy')
    result = _run('yolox_node', ['--ros-args', '-p', 'device:=cpu', '-p', 'build_only:=true',
                                 '-p', f'model_path:={files["planted"]}'])
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'preprocessing: CPU reference (device is cpu)' in result.stderr
    for word in ('cuda', 'nvidia', 'driver'):
        assert word not in result.stderr.lower(), result.stderr[-2000:]


def test_a_gpu_device_without_a_gpu_backend_is_refused_unless_allowed(files: dict) -> None:
    from tensorrt_yolox_py.backends import choose_backend
    from tensorrt_yolox_py.errors import ParameterError
    from tensorrt_yolox_py.params import make_config

    pytest.importorskip('rclpy')
    try:
        choose_backend(make_config({'device': 'gpu'}))
    except ParameterError:
        pass
    else:
        pytest.skip('a GPU backend runs here: no fallback to refuse')
    gpu = ['--ros-args', '-p', 'device:=gpu', '-p', 'build_only:=true',
           '-p', f'model_path:={files["planted"]}']
    refused = _run('yolox_node', gpu)
    assert refused.returncode == 2, refused.stderr[-2000:]
    errors = [line for line in refused.stderr.splitlines() if line.startswith('yolox: error:')]
    assert len(errors) == 1 and errors[0].startswith(
        "yolox: error: parameter 'device': 'gpu' cannot run here (") and errors[0].endswith(
        'set allow_cpu_fallback:=true to run on the CPU instead, or device:=cpu'), errors
    allowed = _run('yolox_node', gpu + ['-p', 'allow_cpu_fallback:=true'])
    assert allowed.returncode == 0, allowed.stderr[-2000:]
    assert re.search(r'\[WARN\] \[[\d.]+\] \[tensorrt_yolox\]: backend: onnxruntime \(CPU '
                     r'fallback: device=gpu cannot run here', allowed.stderr), allowed.stderr
