"""Command line of ``ros.shm_leftovers``: list or remove Fast DDS shared-memory leftovers.

``python -m tensorrt_yolox_py.tools.shm_leftovers [--clean]``
"""

import argparse
import logging
from typing import List, Optional

from ..ros.shm_leftovers import find_leftovers, LOGGER, remove_leftovers


def main(argv: Optional[List[str]] = None) -> int:
    """List the leftovers, or remove them with ``--clean``."""
    parser = argparse.ArgumentParser(
        prog='python -m tensorrt_yolox_py.tools.shm_leftovers',
        description='List (or remove) Fast DDS shared-memory files that no running process '
        'owns.')
    parser.add_argument('--clean', action='store_true', help='remove them')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    leftovers = find_leftovers()
    for path, size in leftovers.items():
        LOGGER.info('%s (%d bytes)', path, size)
    if args.clean:
        removed = remove_leftovers(leftovers)
        LOGGER.info('removed %d file(s), %.0f MiB', len(removed),
                    sum(leftovers[p] for p in removed) / 2**20)
    else:
        LOGGER.info('%d leftover file(s), %.0f MiB%s', len(leftovers),
                    sum(leftovers.values()) / 2**20, ' (remove them with --clean)'
                    if leftovers else '')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
