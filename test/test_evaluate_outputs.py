"""yolox_evaluate's outputs: one run id, replaced together, never a mixture after a kill.

The kills are made in-process at the two places that matter (while the run's files are being
written; between the two renames that swap the folders) by an exception that, like SIGKILL,
runs none of the evaluator's clean-up (the evaluator cleans up only its own errors).
"""

import json
from pathlib import Path

import pytest

pytest.importorskip('rosbags')
pytest.importorskip('pycocotools')

from tensorrt_yolox_py import trust  # noqa: E402
from tensorrt_yolox_py.evaluation import report as report_module  # noqa: E402
from tensorrt_yolox_py.tools.evaluate_bag import main as evaluate_main  # noqa: E402
from test_evaluation_replay import _planted_bag  # noqa: E402


class Killed(BaseException):
    """Stands for SIGKILL: nothing catches it."""


def evaluate(bag, model, out, *extra):
    return evaluate_main([str(bag), '--model', str(model), '--device', 'cpu', '--param',
                          'preprocess_on_gpu=false', '--output', str(out), '--no-progress',
                          *extra])


def consistent_run(out: Path) -> str:
    """Return the run id of ``out`` after checking every file belongs to that one run."""
    run = json.loads((out / 'run.json').read_text())
    run_id = run['run_id']
    assert json.loads((out / 'report.json').read_text())['info']['run_id'] == run_id
    assert f'Run `{run_id}`' in (out / 'summary.md').read_text()
    files = {str(p.relative_to(out)) for p in out.rglob('*') if p.is_file()} - {'run.json'}
    assert set(run['files']) == files
    for name, sha in run['files'].items():
        assert trust.file_sha256(out / name) == sha, name
    return run_id


def accuracy(out: Path):
    return json.loads((out / 'report.json').read_text())['accuracy']


def leftovers(out: Path):
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f'.{out.name}.'))


@pytest.fixture
def bag(tmp_path):
    return _planted_bag(tmp_path)[0]


def test_a_run_replaces_the_previous_outputs_as_a_whole(tmp_path, bag, planted_model):
    out = tmp_path / 'eval'
    assert evaluate(bag, planted_model, out, '--annotate') == 0
    first = consistent_run(out)
    assert (out / 'frames').is_dir()
    assert evaluate(bag, planted_model, out, '--max-frames', '3') == 0
    second = consistent_run(out)
    assert second != first and not (out / 'frames').exists()     # nothing of the first run
    assert json.loads((out / 'report.json').read_text())['frames'] == 3
    assert leftovers(out) == []


def test_a_run_killed_while_writing_leaves_the_previous_run_then_reruns_cleanly(
        tmp_path, bag, planted_model, monkeypatch):
    out, reference = tmp_path / 'eval', tmp_path / 'reference'
    assert evaluate(bag, planted_model, out, '--max-frames', '3') == 0
    first = consistent_run(out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def killed(*args, **kwargs):
        raise Killed()

    monkeypatch.setattr(report_module, 'plot_latency_histogram', killed)  # after report.json
    with pytest.raises(Killed):
        evaluate(bag, planted_model, out)
    assert consistent_run(out) == first
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert len(leftovers(out)) == 1 and leftovers(out)[0].endswith('.partial')

    monkeypatch.undo()
    assert evaluate(bag, planted_model, out) == 0
    assert consistent_run(out) != first and leftovers(out) == []
    assert evaluate(bag, planted_model, reference) == 0
    assert accuracy(out) == accuracy(reference)


def test_a_run_killed_between_the_renames_gets_the_old_outputs_back(tmp_path, bag,
                                                                    planted_model,
                                                                    monkeypatch):
    out = tmp_path / 'eval'
    assert evaluate(bag, planted_model, out, '--max-frames', '3') == 0
    first = consistent_run(out)
    real_rename = trust.os.rename
    calls = []

    def rename(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise Killed()
        return real_rename(src, dst)

    monkeypatch.setattr(trust.os, 'rename', rename)
    with pytest.raises(Killed):
        evaluate(bag, planted_model, out)
    monkeypatch.undo()
    assert not out.exists()                        # the moment between the two renames
    trust.recover_folder(out)
    assert consistent_run(out) == first and leftovers(out) == []
    assert evaluate(bag, planted_model, out) == 0
    assert consistent_run(out) != first


def test_an_output_folder_with_other_files_is_refused_not_replaced(tmp_path, bag,
                                                                   planted_model):
    out = tmp_path / 'mine'
    out.mkdir()
    (out / 'notes.txt').write_text('keep me')
    assert evaluate(bag, planted_model, out) == 2
    assert sorted(p.name for p in out.iterdir()) == ['notes.txt'] and leftovers(out) == []
