"""Evaluation reports: console / markdown tables, JSON, and plots (matplotlib, Agg backend).

Contract: every function takes the evaluator's outputs (``coco.CocoResult`` and per-frame
timing dicts ``{stage: ms}`` as returned by ``Detector.detect``) and returns text or writes a
file; plots are written with the non-interactive Agg backend (no display needed) and their path
is returned. ``write_annotated_frame`` is the one writer of annotated frames (JPEG, one folder
per camera topic, named by header stamp), for every replay.
"""

import json
import os
import re
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from .._lazy import require
from ..timing import summarize
from .coco import CocoResult

#: Order in which stages are reported (others follow alphabetically).
STAGE_ORDER = ('decode', 'preprocess', 'h2d', 'infer', 'd2h', 'postprocess', 'publish', 'total')


def latency_summary(samples: Sequence[Mapping[str, float]]) -> Dict[str, Dict[str, float]]:
    """Return per-stage {median, p90, p99, mean, n} ms, stages in report order."""
    stats = summarize(samples)
    order = [s for s in STAGE_ORDER if s in stats] + sorted(set(stats) - set(STAGE_ORDER))
    return {name: stats[name] for name in order}


def _fmt(value: Optional[float], digits: int = 3) -> str:
    return '-' if value is None else f'{value:.{digits}f}'


def accuracy_table(result: CocoResult, markdown: bool = False) -> str:
    """Return the per-class AP50 / AP table with the overall row last."""
    rows = [(name, result.per_class_AP50.get(name), result.per_class_AP.get(name))
            for name in result.per_class_AP50]
    rows.append(('all (mAP)', result.mAP50, result.mAP))
    if markdown:
        lines = ['| class | AP50 | AP50:95 |', '|---|---|---|']
        lines += [f'| {n} | {_fmt(a)} | {_fmt(b)} |' for n, a, b in rows]
        return '\n'.join(lines)
    width = max(len(r[0]) for r in rows) + 2
    lines = [f"{'class':<{width}}{'AP50':>8}{'AP50:95':>10}"]
    lines += [f'{n:<{width}}{_fmt(a):>8}{_fmt(b):>10}' for n, a, b in rows]
    return '\n'.join(lines)


def latency_table(latency: Mapping[str, Mapping[str, float]], markdown: bool = False) -> str:
    """Return the per-stage latency table (ms)."""
    cols = ('median', 'p90', 'p99', 'mean')
    if markdown:
        lines = ['| stage | ' + ' | '.join(f'{c} ms' for c in cols) + ' | n |',
                 '|---|' + '---|' * (len(cols) + 1)]
        for name, st in latency.items():
            lines.append(f'| {name} | ' + ' | '.join(f'{st[c]:.2f}' for c in cols)
                         + f" | {int(st['n'])} |")
        return '\n'.join(lines)
    lines = [f"{'stage':<13}" + ''.join(f'{c + " ms":>11}' for c in cols) + f"{'n':>7}"]
    for name, st in latency.items():
        lines.append(f'{name:<13}' + ''.join(f'{st[c]:>11.2f}' for c in cols)
                     + f"{int(st['n']):>7}")
    return '\n'.join(lines)


def _pyplot():
    matplotlib = require('matplotlib', 'evaluation plots', 'pip install matplotlib')
    matplotlib.use('Agg', force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_pr_curves(result: CocoResult, path: Union[str, os.PathLike],
                   title: str = 'Precision-recall at IoU 0.5') -> Path:
    """Plot each class's PR curve at IoU 0.5 (from COCOeval) to ``path``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5), dpi=110)
    for name, (recall, precision) in result.pr_curves.items():
        ap = result.per_class_AP50.get(name)
        ax.plot(recall, precision, label=f'{name} (AP50 {_fmt(ap)})')
    ax.set_xlabel('recall')
    ax.set_ylabel('precision')
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(f'{title}; mAP50 {result.mAP50:.3f}, mAP {result.mAP:.3f}')
    ax.legend(fontsize=8, loc='lower left')
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_latency_histogram(samples: Sequence[Mapping[str, float]],
                           path: Union[str, os.PathLike],
                           stages: Sequence[str] = ('preprocess', 'infer', 'postprocess',
                                                    'total'),
                           title: str = 'Per-stage latency') -> Path:
    """Plot one latency histogram per stage (ms) to ``path``."""
    plt = _pyplot()
    present = [s for s in stages if any(s in x for x in samples)]
    fig, axes = plt.subplots(1, max(len(present), 1), figsize=(3.2 * max(len(present), 1), 3),
                             dpi=110, squeeze=False)
    for ax, stage in zip(axes[0], present):
        values = np.asarray([x[stage] for x in samples if stage in x])
        ax.hist(values, bins=min(30, max(values.size // 2, 5)), color='#4477aa')
        ax.axvline(float(np.median(values)), color='#cc3311', lw=1)
        ax.set_title(f'{stage}: median {np.median(values):.1f} ms', fontsize=9)
        ax.set_xlabel('ms')
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_json(data: Mapping[str, object], path: Union[str, os.PathLike]) -> Path:
    """Write ``data`` as indented JSON (atomically) and return the path."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + '.tmp')
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)
    return path


def per_topic_summary(per_topic: Mapping[str, List[Mapping[str, float]]]
                      ) -> Dict[str, Dict[str, float]]:
    """Return per topic {frames, median total ms}."""
    out = {}
    for topic, samples in per_topic.items():
        totals = [s['total'] for s in samples if 'total' in s]
        out[topic] = {'frames': len(samples),
                      'total_median_ms': float(np.median(totals)) if totals else 0.0}
    return out


def topic_folder(topic: str) -> str:
    """Return a file-system-safe folder name for a camera topic."""
    name = topic.replace('/image_rect_color', '').strip('/')
    return re.sub(r'[^A-Za-z0-9_.-]+', '_', name) or 'topic'


def write_annotated_frame(out_dir: Union[str, os.PathLike], topic: str, stamp_ns: int,
                          image: object, detections: object, labels: Sequence[str],
                          threshold: float) -> Path:
    """Draw the detections scoring >= ``threshold`` on ``image`` and write it as JPEG.

    ``image``: a ``SourceImage`` (any encoding). Written to
    ``out_dir/<topic folder>/<stamp_ns>.jpg``; returns the path.
    """
    import cv2

    from ..visualize import annotated_encoding, draw_detections

    keep = detections.scores >= threshold
    shown = type(detections)(detections.boxes[keep], detections.scores[keep],
                             detections.class_ids[keep])
    canvas = draw_detections(image, shown, labels)
    if annotated_encoding(image.encoding.name) == 'rgb8':
        canvas = cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR)
    folder = Path(out_dir) / topic_folder(topic)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f'{stamp_ns}.jpg'
    cv2.imwrite(str(path), canvas, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return path
