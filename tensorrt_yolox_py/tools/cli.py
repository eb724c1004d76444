"""Shared command-line plumbing of the console tools: schema parameters from the command line.

Every tool takes ``--params-file`` (a ROS 2 parameter YAML) and repeated ``--param NAME=VALUE``
(any parameter of the schema, typed by the schema), plus its own shortcut options; precedence is
defaults < tool defaults < params file < --param < shortcut options.
"""

import argparse
from typing import Any, Dict, Mapping, Optional, Tuple

from ..params import load_param_yaml, PARAMS_BY_NAME


def parse_param(text: str) -> Tuple[str, Any]:
    """Parse ``name=value`` into (name, typed value) using the schema's type."""
    import yaml

    name, sep, raw = text.partition('=')
    if not sep:
        raise argparse.ArgumentTypeError(f'expected name=value, got {text!r}')
    spec = PARAMS_BY_NAME.get(name)
    value = raw if spec is not None and spec.type is str else yaml.safe_load(raw)
    return name, value


def add_param_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--params-file`` and ``--param NAME=VALUE`` to ``parser``."""
    parser.add_argument('--params-file', help='ROS 2 parameter YAML (/**: ros__parameters)')
    parser.add_argument('--param', action='append', type=parse_param, default=[],
                        metavar='NAME=VALUE', help='any parameter of the schema')


def param_values(args: argparse.Namespace, defaults: Optional[Mapping[str, Any]] = None,
                 shortcuts: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Merge tool defaults, the params file, ``--param`` and the set shortcut options.

    ``shortcuts`` maps parameter names to the values of the tool's own options; None values
    (options not given) are left out. The result goes to ``params.make_config``.
    """
    values: Dict[str, Any] = dict(defaults or {})
    if args.params_file:
        values.update(load_param_yaml(args.params_file))
    values.update(dict(args.param))
    values.update({k: v for k, v in (shortcuts or {}).items() if v is not None})
    return values
