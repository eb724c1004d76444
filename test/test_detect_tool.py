"""The yolox_detect console tool on a planted image, and its parameter errors."""

import json

import numpy as np

from tensorrt_yolox_py.tools import detect


def test_detect_tool_writes_annotations_and_json(planted_model, tmp_path):
    import cv2

    img = np.full((640, 640, 3), 90, np.uint8)
    img[64:128, 128:192] = (0, 0, 255)
    cv2.imwrite(str(tmp_path / 'scene.png'), img)
    (tmp_path / 'notes.png').write_text('not an image')
    out = tmp_path / 'out'
    code = detect.main([str(tmp_path), '--output', str(out), '--model', str(planted_model),
                        '--device', 'cpu', '--param', 'score_threshold=0.5'])
    assert code == 0
    report = json.loads((out / 'detections.json').read_text())
    assert [r['image'].endswith('scene.png') for r in report] == [True]
    dets = report[0]['detections']
    assert [d['label'] for d in dets] == ['CAR']
    np.testing.assert_allclose(dets[0]['box_xyxy'], [128, 64, 192, 128], atol=1e-3)
    annotated = cv2.imread(str(out / 'scene_det.jpg'))
    assert annotated.shape == img.shape and not np.array_equal(annotated, img)


def test_detect_tool_names_a_bad_parameter(planted_model, tmp_path, caplog):
    code = detect.main([str(tmp_path), '--model', str(planted_model), '--device', 'cpu',
                        '--param', 'nms_threshold=2.0', '--output', str(tmp_path / 'o')])
    assert code == 2
    assert "'nms_threshold'" in caplog.text
