"""Read TensorRT's engine inspector output: per-layer precision and device, I/O tensors.

Contract:

- ``parse_layer(text) -> dict``: one ``EngineInspector.get_layer_information(i, JSON)``
  answer. With ``ProfilingVerbosity.DETAILED`` TensorRT writes ``{"Name", "LayerType"
  (the kernel family, e.g. CaskConvolution, PointWiseV2, Myelin, Reformat), "Inputs" /
  "Outputs": [tensor], "Weights" / "Bias": {"Type", "Count"} (weighted layers),
  "TacticName" / "TacticValue", "Metadata", ...}`` and no precision or device key; below
  DETAILED only the name (a JSON string). A tensor is ``{"Name", "Dimensions",
  "Format/Datatype"}`` before TensorRT 11 and ``{"Name", "Dimensions", "Format", "Datatype"}``
  from 11 (NVIDIA's 10.x-to-11.x IEngineInspector migration guide: the field is split; the
  11.x layer-tensor schema of NVIDIA's trt-perf-analysis tool spells the type ``Datatype``,
  the guide's I/O tensors ``DataType``: both are read).
  Returned: ``name``, ``type``, ``precision``, ``device`` ('DLA' for a DLA subgraph, else
  'GPU'), ``tactic``, ``detailed`` (bool) and ``raw`` (the decoded JSON).
- ``precision`` is the layer's COMPUTE type ('INT8', 'FP16', 'FP32', ...; '' when unknown):
  the type of its weights where it has them, else of its first typed input, else of its
  outputs. Not the output format: an INT8 convolution whose consumer runs in FP16 writes FP16
  (on NVIDIA's INT8 ResNet sample engine, 13 of 21 INT8 convolutions write FP16 or FP32).
- A DLA subgraph is one layer named ``{ForeignNode[first...last]}``; a layer is taken to run on
  the DLA when its ``LayerType`` names the DLA. (Myelin subgraphs are ForeignNodes too, on the
  GPU.) This DLA rule comes from TensorRT's documentation and issue reports, not from an
  engine built here: scripts/check_tensorrt_on_hardware.py keeps one raw layer of each
  ``LayerType`` to confirm it.
- ``engine_io(text)``: the I/O tensor names of ``get_engine_information(JSON)``: ``Bindings``
  (a list of names) before TensorRT 11, ``I/O Tensors`` (a list of objects with ``Name``,
  ``IOMode``, ``DataType``, ...) from 11.
"""

import json
from typing import Any, Dict, List

#: Substrings of a format / data type text -> precision, most specific first.
_FORMATS = (('BFLOAT16', 'BF16'), ('BF16', 'BF16'), ('FP8', 'FP8'), ('FLOAT8', 'FP8'),
            ('FP16', 'FP16'), ('HALF', 'FP16'), ('FLOAT16', 'FP16'), ('INT8', 'INT8'),
            ('INT32', 'INT32'), ('INT64', 'INT64'), ('FP32', 'FP32'), ('FLOAT', 'FP32'),
            ('BOOL', 'BOOL'))


def format_precision(text: str) -> str:
    """Return the precision named by a data type or format text ('' if none)."""
    upper = str(text).upper()
    for key, name in _FORMATS:
        if key in upper:
            return name
    return ''


def tensor_precision(tensor: Any) -> str:
    """Return the precision of one inspector tensor entry (either schema; '' if unknown)."""
    if not isinstance(tensor, dict):
        return ''
    for key in ('Datatype', 'DataType', 'Format/Datatype', 'Format'):
        found = format_precision(tensor.get(key, ''))
        if found:
            return found
    return ''


def _first(entries: Any) -> str:
    for tensor in entries or []:
        found = tensor_precision(tensor)
        if found:
            return found
    return ''


def compute_precision(data: Dict[str, Any]) -> str:
    """Return a layer's compute type: weights, else first typed input, else outputs."""
    weights = data.get('Weights')
    if isinstance(weights, dict):
        found = format_precision(weights.get('Type', ''))
        if found:
            return found
    return _first(data.get('Inputs')) or _first(data.get('Outputs'))


def parse_layer(text: str) -> Dict[str, Any]:
    """Parse one layer's JSON from the engine inspector; see the module contract."""
    data = json.loads(text)
    if not isinstance(data, dict):
        return {'name': str(data), 'type': '', 'precision': '', 'device': '', 'tactic': '',
                'detailed': False, 'raw': data}
    layer_type = str(data.get('LayerType', ''))
    return {'name': str(data.get('Name', '')), 'type': layer_type,
            'precision': compute_precision(data),
            'device': 'DLA' if 'DLA' in layer_type.upper() else 'GPU',
            'tactic': str(data.get('TacticName', data.get('TacticValue', ''))),
            'detailed': True, 'raw': data}


def engine_io(text: str) -> List[str]:
    """Return the I/O tensor names listed by ``get_engine_information(JSON)``."""
    data = json.loads(text)
    for key in ('I/O Tensors', 'Bindings'):
        if key in data:
            return [str(entry.get('Name', '')) if isinstance(entry, dict) else str(entry)
                    for entry in data[key]]
    return []
