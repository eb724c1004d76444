"""Command line of ``onnx_model.integrity``: verify or stamp the checksum of ONNX models.

``python -m tensorrt_yolox_py.tools.model_integrity {verify,stamp} FILE...``
"""

import argparse
import logging
from typing import List, Optional

from ..errors import FileError
from ..onnx_model.integrity import LOG, stamp_file, verify_model_file


def main(argv: Optional[List[str]] = None) -> int:
    """``verify`` or ``stamp`` ONNX files; exit status 1 when a file fails verification."""
    parser = argparse.ArgumentParser(prog='python -m tensorrt_yolox_py.tools.model_integrity',
                                     description='Verify or stamp the content checksum of '
                                     'YOLOX ONNX models.')
    parser.add_argument('action', choices=('verify', 'stamp'))
    parser.add_argument('files', nargs='+')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    status = 0
    for path in args.files:
        try:
            if args.action == 'stamp':
                LOG.info('%s: stamped %s', path, stamp_file(path))
            else:
                LOG.info('%s: %s', path, verify_model_file(path))
        except FileError as exc:
            LOG.error('%s', exc)
            status = 1
    return status


if __name__ == '__main__':
    raise SystemExit(main())
