"""One engine preparation in its own process, with the double (for the concurrency test).

    python build_worker.py MODEL CACHE_DIR READY_FILE GO_FILE RESULT_FILE

Imports everything, touches READY_FILE, waits for GO_FILE, prepares an fp16 engine in
CACHE_DIR (the double's build takes 1 s) and writes {built, builds, sha256} to RESULT_FILE.
"""

import hashlib
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parents[1])]

from trt_double.control import DoubleTensorRT, Hardware  # noqa: E402
from trt_double.host_memory import HostMemory  # noqa: E402


def main(model: str, cache: str, ready: str, go: str, result: str) -> int:
    memory = HostMemory()
    double = DoubleTensorRT(memory=memory, hardware=Hardware(build_delay_s=1.0))
    sys.modules['tensorrt'] = double.module
    from tensorrt_yolox_py.backends.tensorrt.builder import EngineSettings, prepare_engine

    settings = EngineSettings(Path(model), precision='fp16', engine_cache_dir=str(cache))
    Path(ready).touch()
    deadline = time.time() + 60
    while not Path(go).exists():
        if time.time() > deadline:
            return 1
        time.sleep(0.002)
    prepared = prepare_engine(settings, trt=double.module, memory=memory)
    builds = sum(1 for c in double.CALLS if c[0] == 'Builder.build_serialized_network')
    digest = hashlib.sha256(prepared.path.read_bytes()).hexdigest()
    Path(result).write_text(json.dumps({'built': prepared.built, 'builds': builds,
                                        'sha256': digest}))
    return 0


if __name__ == '__main__':
    sys.exit(main(*sys.argv[1:6]))
