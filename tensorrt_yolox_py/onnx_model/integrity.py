"""Content checksum of ONNX models: stamped at export, verified at load.

- ``graph_sha256(model)``: SHA-256 of the model's graph (nodes, initializers: every weight
  byte, inputs, outputs), serialized deterministically. Metadata properties are not part of
  it, so stamping does not change what it covers.
- ``stamp(model)`` stores it as metadata property ``yolox_graph_sha256`` together with the
  model's ``producer_name`` (``yolox_checksum_producer``) at the time of stamping.
- ``verify_model_file(path)``: reads the file (weights stored in the file itself; external
  data files are not covered) and returns ``'verified'``, ``'unstamped'`` (no checksum: the
  caller logs a note) or ``'rewritten'`` (the checksum was stamped by another producer: a tool
  such as ONNX Runtime's quantizer rewrote the graph and kept the metadata, so the checksum no
  longer describes it). A mismatch or a file that is not ONNX raises ``FileError`` naming the
  file.

Command line: ``python -m tensorrt_yolox_py.tools.model_integrity {verify,stamp} FILE...``.
"""

import hashlib
import logging
from pathlib import Path
from typing import Any, Union

from .._lazy import require
from ..errors import FileError

LOG = logging.getLogger(__name__)
CHECKSUM_KEY = 'yolox_graph_sha256'
PRODUCER_KEY = 'yolox_checksum_producer'


def graph_sha256(model: Any) -> str:
    """Return the hex SHA-256 of ``model.graph`` (deterministic protobuf serialization)."""
    return hashlib.sha256(model.graph.SerializeToString(deterministic=True)).hexdigest()


def _set_prop(model: Any, key: str, value: str) -> None:
    for prop in model.metadata_props:
        if prop.key == key:
            prop.value = value
            return
    prop = model.metadata_props.add()
    prop.key, prop.value = key, value


def stamp(model: Any) -> str:
    """Store the graph checksum (and the producer) in ``model``'s metadata; return it."""
    digest = graph_sha256(model)
    _set_prop(model, CHECKSUM_KEY, digest)
    _set_prop(model, PRODUCER_KEY, model.producer_name)
    return digest


def stamped_checksum(model: Any) -> str:
    """Return the checksum stored in ``model``'s metadata, or '' when there is none."""
    return next((p.value for p in model.metadata_props if p.key == CHECKSUM_KEY), '')


def verify_model(model: Any, path: Union[str, Path]) -> str:
    """Check ``model`` (read from ``path``) against its stamp; see the module docstring."""
    props = {p.key: p.value for p in model.metadata_props}
    expected = props.get(CHECKSUM_KEY, '')
    if not expected:
        return 'unstamped'
    if props.get(PRODUCER_KEY, model.producer_name) != model.producer_name:
        return 'rewritten'
    actual = graph_sha256(model)
    if actual != expected:
        raise FileError(path, f'model file {path} fails its checksum (the weights or graph '
                        f'changed after export: a corrupted or altered file; expected '
                        f'{expected[:16]}..., got {actual[:16]}...). If you changed it on '
                        f'purpose, re-stamp it: python -m tensorrt_yolox_py.tools.model_integrity '
                        f'stamp {path}')
    return 'verified'


def verify_model_file(path: Union[str, Path]) -> str:
    """Read the ONNX file ``path`` and verify it (``verify_model``); FileError if unreadable."""
    onnx = require('onnx', 'the model checksum', 'pip install onnx')
    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except FileNotFoundError as exc:
        raise FileError(path, f'model file {path} not found') from exc
    except OSError as exc:
        raise FileError(path, f'cannot read model file {path}: {exc}') from exc
    except Exception as exc:  # protobuf's DecodeError and friends: not an ONNX file
        raise FileError(path, f'model file {path} is not a valid ONNX model '
                        f'({type(exc).__name__}: {exc})') from exc
    return verify_model(model, path)


def check_model_file(path: Union[str, Path], require_verified: bool = False) -> str:
    """``verify_model_file`` plus the log line for each outcome; returns the outcome.

    A model that cannot be verified (``unstamped``: no checksum, or stripped; ``rewritten``:
    stamped by another producer, or the producer altered) loads with a WARNING, or raises
    ``FileError`` when ``require_verified`` (the ``require_verified_model`` parameter). A wrong
    checksum always raises (``verify_model``).
    """
    outcome = verify_model_file(path)
    if outcome == 'verified':
        LOG.info('model %s: checksum verified', path)
        return outcome
    why = ('has no checksum in its metadata (not exported by this package, or the checksum '
           'was stripped)' if outcome == 'unstamped' else
           'carries a checksum stamped by another producer (a tool rewrote the graph after '
           'export, e.g. a quantizer, or the metadata was altered), so it cannot be checked')
    fix = f'python -m tensorrt_yolox_py.tools.model_integrity stamp {path}'
    if require_verified:
        raise FileError(path, f'model file {path} {why}; require_verified_model is true. Fix: '
                        f'if you trust this file, stamp it ({fix}), or set '
                        'require_verified_model to false')
    LOG.warning('model %s %s: loaded WITHOUT an integrity check (set require_verified_model '
                'to refuse such models; stamp a model you trust: %s)', path, why, fix)
    return outcome


def stamp_file(path: Union[str, Path], output: Union[str, Path, None] = None) -> str:
    """Stamp the ONNX file ``path`` (into ``output``, default in place); return the checksum."""
    onnx = require('onnx', 'the model checksum', 'pip install onnx')
    model = onnx.load(str(path))
    digest = stamp(model)
    onnx.save(model, str(output or path))
    return digest
