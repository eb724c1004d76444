"""Read TensorRT's engine inspector output: per-layer precision and device, I/O tensors.

Contract:

- ``parse_layer(text) -> dict``: one ``EngineInspector.get_layer_information(i, JSON)``
  answer. With ``ProfilingVerbosity.DETAILED`` TensorRT writes ``{"Name", "LayerType"
  (the kernel family, e.g. CaskConvolution, PointWiseV2, Myelin, Reformat), "Inputs" /
  "Outputs": [{"Name", "Dimensions", "Format/Datatype"}], "TacticName" / "TacticValue",
  "Metadata", ...}`` and no precision or device key; below DETAILED only the name (a JSON
  string). Returned: ``name``, ``type``, ``precision`` ('INT8', 'FP16', 'FP32', ... read from
  the output formats, else the inputs; '' when unknown), ``device`` ('DLA' for a DLA subgraph,
  else 'GPU'), ``tactic``, ``detailed`` (bool) and ``raw`` (the decoded JSON).
- A DLA subgraph is one layer named ``{ForeignNode[first...last]}``; a layer is taken to run on
  the DLA when its ``LayerType`` names the DLA. (Myelin subgraphs are ForeignNodes too, on the
  GPU.) This DLA rule comes from TensorRT's documentation and issue reports, not from an
  engine built here: scripts/check_tensorrt_on_hardware.py prints the raw JSON to confirm it.
- ``engine_io(text)``: the I/O tensor names of ``get_engine_information(JSON)`` (``Bindings``
  before TensorRT 11, ``I/O Tensors`` from 11).
"""

import json
from typing import Any, Dict, List

#: Substrings of "Format/Datatype" -> precision, most specific first (Polygraphy's order).
_FORMATS = (('BFLOAT16', 'BF16'), ('BF16', 'BF16'), ('FP8', 'FP8'), ('FP16', 'FP16'),
            ('HALF', 'FP16'), ('INT8', 'INT8'), ('INT32', 'INT32'), ('INT64', 'INT64'),
            ('FP32', 'FP32'), ('FLOAT', 'FP32'), ('BOOL', 'BOOL'))


def format_precision(text: str) -> str:
    """Return the precision named by a "Format/Datatype" string ('' if none)."""
    upper = str(text).upper()
    for key, name in _FORMATS:
        if key in upper:
            return name
    return ''


def _tensors_precision(entries: Any) -> str:
    found = [format_precision(t.get('Format/Datatype', '')) for t in entries or []
             if isinstance(t, dict)]
    found = [p for p in found if p]
    for wanted in ('INT8', 'FP8', 'FP16', 'BF16', 'FP32'):
        if wanted in found:
            return wanted
    return found[0] if found else ''


def parse_layer(text: str) -> Dict[str, Any]:
    """Parse one layer's JSON from the engine inspector; see the module contract."""
    data = json.loads(text)
    if not isinstance(data, dict):
        return {'name': str(data), 'type': '', 'precision': '', 'device': '', 'tactic': '',
                'detailed': False, 'raw': data}
    layer_type = str(data.get('LayerType', ''))
    precision = _tensors_precision(data.get('Outputs')) or _tensors_precision(data.get('Inputs'))
    return {'name': str(data.get('Name', '')), 'type': layer_type, 'precision': precision,
            'device': 'DLA' if 'DLA' in layer_type.upper() else 'GPU',
            'tactic': str(data.get('TacticName', data.get('TacticValue', ''))),
            'detailed': True, 'raw': data}


def engine_io(text: str) -> List[str]:
    """Return the I/O tensor names listed by ``get_engine_information(JSON)``."""
    data = json.loads(text)
    for key in ('I/O Tensors', 'Bindings'):
        if key in data:
            return [str(name) for name in data[key]]
    return []
