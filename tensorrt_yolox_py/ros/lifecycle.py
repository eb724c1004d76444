"""Process life of the ROS entry points (``yolox_node``, ``yolox_multi_camera``).

Start-up, spinning and shutdown are the same for both (console scripts in ``entry_points``),
so they live here once:

- **Signals.** ``install_signal_handlers`` replaces Python's and rclpy's SIGINT/SIGTERM handling
  with one that only records the request (``STOP``) and never raises. rclpy is initialised
  with ``SignalHandlerOptions.NO``: its handler shuts the context down from a signal, which
  races with a spinning executor (``RCLError: failed to initialize wait set: the given context
  is not valid``, "cannot use Destroyable because destruction was requested") and a second
  Ctrl-C during its teardown can abort the process ("terminate called without an active
  exception"). Here the main thread waits for the request and then tears down in order:
  stop the executor thread, destroy the nodes (workers joined, detectors closed), shut the
  context down. A signal during start-up lets the current step finish (a model load, a
  TensorRT build), then the process exits 0; further signals change nothing.
- **Executor.** One ``SingleThreadedExecutor`` in a background thread for every node of the
  process. The callbacks only store the newest image (worker threads do the work), and
  measurement chose it: ``MultiThreadedExecutor``'s Python loop (a guard trigger per taken
  message, a thread pool, the futures list) holds the GIL often enough to stall every
  camera's worker at once (benchmarks/bench_multi_camera.py, docs/ros_interface.md).
- **Exit status** (``exit_status``; the README table is checked by a test): 0 normal end
  (signal, context shutdown, ``build_only``); 1 a file cannot be used (missing, unreadable,
  malformed, failed checksum: model, label, cameras or parameter file) or the model/backend
  fails to load; 2 the configuration is invalid (a parameter value, a cameras file entry, a
  command-line or ``--ros-args`` argument). Every start-up error is one ``yolox: error:`` line.
- **Crashes.** A crash in native code (Fast DDS, a CUDA driver, TensorRT) ends the process
  with a signal (status -11 for SIGSEGV); ``enable_crash_traces`` has Python print the stack of
  every thread to the process's original stderr first, also while ``init_ros`` holds stderr
  back, so the launch log shows where it died.

Only the standard library is imported at module level, so the console scripts install the
signal handlers before the heavy imports (rclpy, ONNX Runtime) run.
"""

import faulthandler
import logging
import os
import re
import signal
import sys
import tempfile
import threading
import time
from types import FrameType
from typing import Any, Callable, Iterable, List, Optional

EXIT_OK = 0
EXIT_FILE_ERROR = 1
EXIT_CONFIG_ERROR = 2
#: How long the main thread waits for the executor thread and each node at shutdown.
SHUTDOWN_TIMEOUT_S = 10.0
LOGGER = logging.getLogger('yolox')


class UsageError(Exception):
    """The command line (including ``--ros-args``) was rejected; exit status 2."""


class StopRequest:
    """A stop request set by SIGINT / SIGTERM (or by code); setting it never blocks or raises.

    The signal handler only flips a flag (no lock: a handler runs between two bytecodes of the
    main thread, which may hold any lock at that moment); waiters poll it.
    """

    def __init__(self) -> None:
        self._requested = False
        self.signals: List[int] = []

    def set(self, signum: Optional[int] = None) -> None:
        """Request the stop (idempotent)."""
        if signum is not None:
            self.signals.append(signum)
        self._requested = True

    def is_set(self) -> bool:
        """Whether a stop was requested."""
        return self._requested

    def wait(self, timeout: float, poll_s: float = 0.05) -> bool:
        """Wait until a stop is requested or ``timeout`` passes; return whether it was."""
        deadline = time.monotonic() + timeout
        while not self._requested:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(poll_s, left))
        return self._requested

    def reset(self) -> None:
        """Forget earlier requests (a new run in the same process, e.g. in tests)."""
        self._requested = False
        self.signals = []


#: The process-wide stop request the signal handlers set.
STOP = StopRequest()


def _on_signal(signum: int, _frame: Optional[FrameType]) -> None:
    STOP.set(signum)


def install_signal_handlers() -> None:
    """Make SIGINT and SIGTERM request a clean stop (main thread only; idempotent)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _on_signal)


def exit_status(exc: BaseException) -> int:
    """Return the documented exit status of a start-up error (see the module docstring)."""
    from ..errors import FileError, ModelContractError, ParameterError
    from .camera_mapping import CameraConfigError

    if isinstance(exc, (FileError, ModelContractError)):
        return EXIT_FILE_ERROR
    if isinstance(exc, (ParameterError, CameraConfigError, UsageError)):
        return EXIT_CONFIG_ERROR
    return EXIT_FILE_ERROR


def report_startup_error(exc: BaseException) -> int:
    """Print a one-line start-up error (no traceback) and return its exit status."""
    text = ' '.join(str(exc).split()) or type(exc).__name__
    print(f'yolox: error: {text}', file=sys.stderr, flush=True)
    return exit_status(exc)


_RCL_TRACE = re.compile(r',? at /\S+:\d+')
_PARAMS_FILE = re.compile(r"Couldn't parse params file: '--params-file (?P<path>[^']*)'\. "
                          r'Error: (?P<why>.*)', re.S)


def translate_rcl_init_error(exc: Exception) -> Exception:
    """Turn rcl's argument error from ``rclpy.init`` into FileError or UsageError."""
    from ..errors import FileError

    text = _RCL_TRACE.sub('', str(exc)).replace('failed to initialize rcl: ', '').strip()
    match = _PARAMS_FILE.search(text)
    if match:
        path, why = match.group('path'), ' '.join(match.group('why').split())
        reason = 'cannot open it' if 'Error opening YAML file' in why else why
        return FileError(path, f'ROS parameter file {path}: {reason}')
    return UsageError(f'ROS arguments: {" ".join(text.split())}')


def _flags(exc: Exception) -> str:
    """Return the flags of rclpy's UnknownROSArgsError (its text is a Python list)."""
    import ast

    try:
        flags = ast.literal_eval(str(exc))
    except (ValueError, SyntaxError):
        return str(exc)
    return ' '.join(map(str, flags)) if isinstance(flags, list) else str(flags)


def init_ros(args: Optional[List[str]]) -> Any:
    """``rclpy.init`` without rclpy's signal handlers; rcl's argument errors become one line.

    The package's Fast DDS profile is applied first unless the user chose one
    (``dds_profile``), and Fast DDS shared-memory leftovers of killed processes are reported
    (``shm_leftovers``). An unknown flag after ``--ros-args`` is a ``UsageError``. Returns the
    context manager of ``rclpy.init`` (use it in a ``with``; where ``init`` returns None,
    Humble and Jazzy, one that calls ``try_shutdown``). rcl prints its own "Failed to parse
    global arguments" log on stderr before raising; that output is held back and shown only
    when init succeeds, so a bad argument gives exactly one line.
    """
    import rclpy
    from rclpy.impl.implementation_singleton import rclpy_implementation
    from rclpy.signals import SignalHandlerOptions

    from .dds_profile import apply_dds_profile
    from .shm_leftovers import warn_about_leftovers

    rcl_error = rclpy_implementation.RCLError
    unknown_args = getattr(rclpy_implementation, 'UnknownROSArgsError', rcl_error)
    apply_dds_profile(os.environ, LOGGER)
    warn_about_leftovers(LOGGER)
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            manager = rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        except unknown_args as exc:  # an unknown flag after --ros-args: str(exc) is a list
            raise UsageError(f'ROS arguments: unknown ROS argument(s) {_flags(exc)} (valid: -r, '
                             '-p, --params-file, --log-level, -e, --enclave, ...: '
                             'ros2 run --help)') from None
        except rcl_error as exc:
            raise translate_rcl_init_error(exc) from None
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors='replace'))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        held.seek(0)
        sys.stderr.write(held.read().decode(errors='replace'))
        sys.stderr.flush()
    # Kilted's rclpy.init returns a context manager that shuts rclpy down on exit; Humble's
    # and Jazzy's return None (test/platforms: the rclpy API of the three distributions).
    return manager if manager is not None else _ShutdownOnExit(rclpy)


class _ShutdownOnExit:
    """``rclpy.init``'s context manager for rclpy releases whose ``init`` returns None."""

    def __init__(self, rclpy: Any):
        self._rclpy = rclpy

    def __enter__(self) -> '_ShutdownOnExit':
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._rclpy.try_shutdown()


def spin_until_stopped(nodes: Iterable[Any], context: Any = None,
                       stop: StopRequest = STOP) -> None:
    """Spin ``nodes`` in one SingleThreadedExecutor thread until ``stop`` or context shutdown.

    The calling (main) thread only waits, so signal handlers run at once. On return the
    executor thread has ended and the executor is shut down; the caller destroys the nodes
    and then the context. An exception from a callback is re-raised here.
    """
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.task import Future

    executor = SingleThreadedExecutor(context=context)
    for node in nodes:
        executor.add_node(node)
    # What Kilted's Executor.create_future does; Humble's and Jazzy's executors lack it.
    done = Future(executor=executor)
    failure: List[BaseException] = []

    def spin() -> None:
        try:
            executor.spin_until_future_complete(done)
        except ExternalShutdownException:
            pass
        except BaseException as exc:  # noqa: B902 (handed to the main thread)
            failure.append(exc)
        finally:
            stop.set()

    thread = threading.Thread(target=spin, name='yolox-executor', daemon=True)
    thread.start()
    try:
        while thread.is_alive() and not stop.wait(0.5):
            pass
        if stop.signals:
            LOGGER.info('%s received: shutting down', signal.Signals(stop.signals[0]).name)
    finally:
        done.set_result(None)  # wakes the executor thread, which then returns
        thread.join(SHUTDOWN_TIMEOUT_S)
        executor.shutdown(timeout_sec=SHUTDOWN_TIMEOUT_S)
    if failure:
        raise failure[0]


def run_entry_point(body: Callable[[], Optional[int]]) -> int:
    """Run an entry point's ``body`` and return the exit status (module docstring).

    The signal handlers are installed first; a signal never raises inside ``body``: the body
    checks ``STOP`` between start-up steps and ``spin_until_stopped`` returns on it. It is a
    process's entry point: it returns with SIGINT and SIGTERM ignored (``ignore_signals``),
    for the caller to exit with the status.
    """
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread:
        install_signal_handlers()
        enable_crash_traces()
    logging.basicConfig(level=logging.INFO, format='[%(levelname)s] [%(name)s]: %(message)s')
    from ..errors import YoloxError

    try:
        return body() or EXIT_OK
    except KeyboardInterrupt:  # only if a caller installed no handler of its own
        return EXIT_OK
    except (YoloxError, UsageError, OSError) as exc:
        return report_startup_error(exc)
    finally:
        if main_thread:
            ignore_signals()


_CRASH_STREAM: List[Any] = []


def enable_crash_traces() -> None:
    """On SIGSEGV, SIGFPE, SIGABRT, SIGBUS or SIGILL, print every thread's Python stack.

    The trace goes to a duplicate of the stderr this process started with: ``init_ros``
    points file descriptor 2 at a temporary file while ``rclpy.init`` runs (the DDS participant
    is made there), and a crash in that moment must still reach the log. Once per process;
    left as it is when faulthandler is on already (``python -X faulthandler``, pytest).
    """
    if _CRASH_STREAM or faulthandler.is_enabled():  # already on (-X faulthandler, pytest)
        return
    try:
        stream = os.fdopen(os.dup(sys.stderr.fileno()), 'w')
    except (OSError, ValueError, AttributeError):  # no usable stderr (closed, replaced)
        return
    _CRASH_STREAM.append(stream)  # kept open for the life of the process
    faulthandler.enable(file=stream, all_threads=True)


def ignore_signals() -> None:
    """Ignore SIGINT and SIGTERM from now on (the exit status is decided).

    Python's finalization resets a Python-level signal handler to the default action, so a
    second Ctrl-C or SIGTERM during the interpreter's exit would kill the process (status
    -2 / -15) after a clean shutdown; an ignored signal stays ignored.
    """
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


def exit_process(status: int) -> None:
    """Exit with ``status``, signals ignored from now on (``ignore_signals``)."""
    ignore_signals()
    sys.exit(status)
