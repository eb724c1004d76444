"""Every repository path named in code, docs and scripts exists (no stale references).

A path-like token (``tensorrt_yolox_py/...``, ``docs/...``, ``scripts/...``, ``benchmarks/...``,
``test/...``, ``config/...``, ``launch/...``, ``third_party/...``) in a tracked text file must
name a file or folder of the tree, or be the prefix of one (``benchmarks/results/host_path_``
for the per-card result files).
"""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATTERN = re.compile(r'(?<![\w/.-])((?:tensorrt_yolox_py|docs|scripts|benchmarks|test|config|'
                     r'launch|third_party)/[\w./-]*\w)')
SUFFIXES = ('.py', '.md', '.sh', '.cu', '.cuh', '.yaml', '.txt', '.cfg', '.xml')


def tracked_text_files():
    try:
        out = subprocess.run(['git', 'ls-files'], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip('not a git checkout')
    return [f for f in out.split() if f.endswith(SUFFIXES) and '/results/' not in f]


def _exists(ref: str) -> bool:
    path = ROOT / ref
    if path.exists():
        return True
    parent = path.parent
    return parent.is_dir() and any(p.name.startswith(path.name) for p in parent.iterdir())


def test_every_named_path_exists():
    missing = {}
    for name in tracked_text_files():
        text = (ROOT / name).read_text(errors='ignore')
        for match in PATTERN.finditer(text):
            ref = match.group(1).rstrip('.')
            after = text[match.end():match.end() + 1]
            if any(c in ref for c in '*<{$') or after in ('<', '{', '*'):
                continue                 # a pattern, e.g. gpu_end_to_end_<tag>.json
            if not _exists(ref):
                missing.setdefault(ref, []).append(name)
    assert not missing, '\n'.join(f'{ref} (named in {", ".join(sorted(set(files)))})'
                                  for ref, files in sorted(missing.items()))
