"""The end-to-end GPU benchmark's ``--quick`` mode runs on the CPU and writes its reports."""

import json

import pytest

pytest.importorskip('torch')


def test_quick_mode_writes_json_and_markdown(tmp_path):
    from benchmarks.bench_gpu_end_to_end import main

    assert main(['--quick', '--seconds', '0.5', '--out', str(tmp_path),
                 '--tag', 'ci']) == 0
    report = json.loads((tmp_path / 'gpu_end_to_end_ci.json').read_text())
    assert report['quick'] and report['errors'] == []
    rows = report['rows']
    assert {(r['mode'], r['cameras']) for r in rows} == {
        ('batched', 1), ('batched', 4), ('per_camera', 1), ('per_camera', 4)}
    for row in rows:
        assert row['frames'] > 0 and row['fps'] > 0
        assert row['p99_ms'] >= row['p50_ms'] > 0
        assert set(row['stage_median_ms']) == {'preprocess', 'infer', 'postprocess', 'total'}
    batched4 = next(r for r in rows if r['mode'] == 'batched' and r['cameras'] == 4)
    assert batched4['mean_batch_size'] >= 1.0
    assert len(report['targets']) == 1
    assert 'versions' in report['machine'] and report['machine']['date_utc']
    text = (tmp_path / 'gpu_end_to_end_ci.md').read_text()
    assert '## Targets (4 cameras)' in text and 'frames/s' in text
