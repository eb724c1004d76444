"""ROS 2 node: sensor_msgs/Image -> YOLOX ``Detector`` -> vision_msgs/Detection2DArray.

Topics (private names, remapped by launch; Autoware's tensorrt_yolox names):

- ``~/in/image`` (sensor_msgs/Image, any encoding of ``image.ENCODINGS``): sensor-data QoS
  (best effort, keep last 1); overridable with the standard parameters
  ``qos_overrides.<topic>.subscription.<policy>``.
- ``~/out/objects`` (vision_msgs/Detection2DArray): header copied from the image; per object
  the label name, score and box centre/size in source-image pixels.
- ``~/out/label_info`` (vision_msgs/LabelInfo): transient local, published once at start-up.
- ``~/out/image`` (sensor_msgs/Image): boxes drawn on the input; computed only while someone
  subscribes.
- ``~/debug/processing_time_ms`` (std_msgs/Float64): the detector's time for the frame
  (preprocess + infer + postprocess); ``~/debug/pipeline_latency_ms`` (std_msgs/Float64):
  node clock now minus the image stamp, when the result is published.
- ``/diagnostics`` (diagnostic_msgs/DiagnosticArray, 1 Hz of wall-clock time whatever
  ``use_sim_time`` says, when diagnostic_msgs is installed): frame counters (received,
  processed, dropped, skipped, failed, and from the subscription's DDS events ``lost`` and
  ``qos_incompatible``: ``qos_events``) and median stage times; the level from
  ``worker.Health`` (ERROR for a QoS mismatch, WARN above the documented loss rate), and at
  least WARN while a gpu / DLA node runs on the CPU (``allow_cpu_fallback``; refused by default).

Threading: the subscription callback only stores the newest frame (``worker.LatestSlot``); one
worker thread per node converts, detects and publishes, so the executor is never blocked and a
slow model drops old frames (counted) instead of queueing them. Malformed images are skipped
with a rate-limited warning. ``destroy_node`` stops the worker and releases the detector.
"""

import copy
import threading
import time
from typing import Any, Callable, List, Optional

from .._lazy import require
from ..backends import choose_backend, CPU_FALLBACK
from ..errors import InputError
from ..params import DetectorConfig
from ..pipeline import Detector
from .image_conversion import fill_image_msg, image_msg_to_source, ImageFormatError
from .lifecycle import STOP, init_ros, run_entry_point, spin_until_stopped
from ..visualize import annotated_encoding, draw_detections
from .messages import copy_header, to_detection2d_array, to_label_info
from .parameters import declare_detector_parameters
from .qos_events import subscription_events
from .worker import COUNTERS, FrameStats, Health, LatestSlot, RateLimiter

rclpy = require('rclpy', 'the ROS 2 node',
                'bash scripts/setup.sh (ROS 2 from the PyPI ros-* wheels)')
from rclpy.clock import Clock, ClockType  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile,  # noqa: E402
                       ReliabilityPolicy)
from rclpy.qos_overriding_options import QoSOverridingOptions  # noqa: E402
from rclpy.time import Time  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Float64, Header  # noqa: E402

vision_msgs = require('vision_msgs.msg', 'the ROS 2 node', 'bash scripts/build_vision_msgs.sh '
                      '.venv (or your distribution\'s vision_msgs package)')

DetectorFactory = Callable[[DetectorConfig], Detector]
#: Input QoS: best effort, keep only the newest image (DESIGN.md).
SENSOR_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                        reliability=ReliabilityPolicy.BEST_EFFORT,
                        durability=DurabilityPolicy.VOLATILE)
LABEL_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                       reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL)
WARN_PERIOD_S = 5.0


class YoloxNode(Node):
    """The detector node; ``detector_factory`` (default ``Detector.from_config``) builds it."""

    def __init__(self, node_name: str = 'tensorrt_yolox', *,
                 detector_factory: Optional[DetectorFactory] = None, **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self._destroyed = False
        self._stopping = threading.Event()
        self.detector: Optional[Detector] = None
        self.cpu_fallback = ''
        try:
            self.config, _ = declare_detector_parameters(self)
            backend, reason = choose_backend(self.config)
            #: Why this gpu / DLA node runs on the CPU (allow_cpu_fallback), or ''.
            self.cpu_fallback = reason if reason.startswith(CPU_FALLBACK) else ''
            (self.get_logger().warning if self.cpu_fallback else self.get_logger().info)(
                f'backend: {backend} ({reason}); device {self.config.device}; model '
                f'{self.config.resolved_model_path}' + (
                    ' (a TensorRT engine build can take minutes on first start)'
                    if backend == 'tensorrt' else ''))
            self.detector = (detector_factory or Detector.from_config)(self.config)
            self.get_logger().info(f'ready: {self.detector.backend.describe()}, '
                                   f'{len(self.detector.labels)} classes')
        except BaseException:
            self.destroy_node()
            raise
        self.labels: List[str] = list(self.detector.labels)
        self.stats = FrameStats()
        self._slot: LatestSlot = LatestSlot()
        self._limiter = RateLimiter(WARN_PERIOD_S)
        self._objects_pub = self.create_publisher(vision_msgs.Detection2DArray,
                                                  '~/out/objects', 10)
        self._image_pub = self.create_publisher(Image, '~/out/image', 1)
        self._time_pub = self.create_publisher(Float64, '~/debug/processing_time_ms', 10)
        self._latency_pub = self.create_publisher(Float64, '~/debug/pipeline_latency_ms', 10)
        self._label_pub = self.create_publisher(vision_msgs.LabelInfo, '~/out/label_info',
                                                LABEL_QOS)
        self._label_pub.publish(to_label_info(
            self.labels, self.config.score_threshold,
            Header(stamp=self.get_clock().now().to_msg())))
        self._diagnostics = self._make_diagnostics()
        self._worker = threading.Thread(target=self._run, daemon=True,
                                        name=f'yolox-{self.get_fully_qualified_name()}')
        self._worker.start()
        # a copy of the QoS: rclpy writes qos_overrides into the profile it is given, which
        # would otherwise carry one node's overrides to every later node of the process
        self._sub = self.create_subscription(
            Image, '~/in/image', self._on_image, copy.copy(SENSOR_QOS),
            qos_overriding_options=QoSOverridingOptions.with_default_policies(),
            event_callbacks=subscription_events(self.stats, self._warn))
        self.get_logger().info(f'listening on {self._sub.topic_name}, publishing '
                               f'{self._objects_pub.topic_name}')

    # -- executor side: never blocks -------------------------------------------------------
    def _on_image(self, msg: Any) -> None:
        self.stats.count('received')
        if self._slot.put(msg):
            self.stats.count('dropped')

    # -- worker thread ---------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping.is_set():
            msg = self._slot.get(timeout=0.2)
            if msg is None:
                continue
            try:
                self._process(msg)
            except InputError as exc:
                self.stats.skip(str(exc))
                kind = exc.kind if isinstance(exc, ImageFormatError) else 'input'
                self._warn(f'input:{kind}', f'skipping image {msg.width}x{msg.height} '
                           f'{msg.encoding!r} (frame_id {msg.header.frame_id!r}): {exc}')
            except Exception as exc:  # keep serving: one failed frame must not stop the node
                if self._stopping.is_set() or not self.context.ok():
                    break
                self.stats.count('failed')
                self._warn('failure', f'detection failed: {type(exc).__name__}: {exc}')

    def _process(self, msg: Any) -> None:
        source = image_msg_to_source(msg)
        result = self.detector.detect(source)
        self._objects_pub.publish(to_detection2d_array(result.detections, self.labels,
                                                       msg.header))
        if self._image_pub.get_subscription_count() > 0:
            canvas = draw_detections(source, result.detections, self.labels)
            self._image_pub.publish(fill_image_msg(Image(header=copy_header(msg.header)),
                                                   canvas,
                                                   annotated_encoding(source.encoding.name)))
            self.stats.count('annotated')
        # rclpy holds the GIL while it serializes and hands a message to DDS (the largest GIL
        # holder of a multi-camera process, benchmarks/bench_multi_camera.py): the debug
        # topics are published only while someone listens.
        if self._time_pub.get_subscription_count() > 0:
            self._time_pub.publish(Float64(data=float(result.timings['total'])))
        if self._latency_pub.get_subscription_count() > 0:
            latency = self.get_clock().now() - Time.from_msg(
                msg.header.stamp, clock_type=self.get_clock().clock_type)
            self._latency_pub.publish(Float64(data=latency.nanoseconds / 1e6))
        self.stats.add_timings(result.timings)

    def _warn(self, key: str, text: str) -> None:
        allowed, held = self._limiter.allow(key)
        if allowed:
            suffix = f' ({held} similar messages suppressed)' if held else ''
            self.get_logger().warning(text + suffix)

    # -- diagnostics -----------------------------------------------------------------------
    def _make_diagnostics(self) -> Any:
        try:
            diag = require('diagnostic_msgs.msg', 'diagnostics', 'pip install ros-diagnostic-msgs')
        except ImportError:
            self.get_logger().info('diagnostic_msgs not installed: no /diagnostics output')
            return None
        publisher = self.create_publisher(diag.DiagnosticArray, '/diagnostics', 10)
        self._health = Health()
        # wall-clock (steady) timer: diagnostics go on with a paused or looping bag's /clock
        self.create_timer(1.0, lambda: self._publish_diagnostics(diag, publisher),
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        return publisher

    def _publish_diagnostics(self, diag: Any, publisher: Any) -> None:
        snap = self.stats.snapshot()
        name, message = self._health.assess(snap, time.monotonic())
        if self.cpu_fallback:  # WARN at least, for as long as it runs on the CPU
            message = self.cpu_fallback if name == Health.OK else \
                f'{message}; {self.cpu_fallback}'
            name = Health.WARN if name == Health.OK else name
        level = getattr(diag.DiagnosticStatus, name)
        values = [diag.KeyValue(key=k, value=str(snap[k])) for k in COUNTERS]
        values += [diag.KeyValue(key=f'{stage}_ms_median', value=f'{ms:.3f}')
                   for stage, ms in snap['median_ms'].items()]
        values.append(diag.KeyValue(key='backend', value=self.detector.backend.name))
        status = diag.DiagnosticStatus(level=level, message=message, values=values,
                                       name=f'{self.get_fully_qualified_name()}: detector',
                                       hardware_id=self.config.device)
        publisher.publish(diag.DiagnosticArray(header=Header(
            stamp=self.get_clock().now().to_msg()), status=[status]))

    # -- shutdown --------------------------------------------------------------------------
    def destroy_node(self) -> None:
        """Stop the worker thread, release the detector, then destroy the ROS node."""
        if self._destroyed:
            return
        self._destroyed = True
        self._stopping.set()
        slot = getattr(self, '_slot', None)
        if slot is not None:
            slot.close()
        worker = getattr(self, '_worker', None)
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=30.0)
        if self.detector is not None:
            self.detector.close()
        super().destroy_node()


def main(args: Optional[List[str]] = None) -> int:
    """Run one detector node until SIGINT, SIGTERM or context shutdown (console: yolox_node).

    Start-up, signals, shutdown order and exit status: ``lifecycle``.
    """
    def body() -> None:
        with init_ros(args):
            if STOP.is_set():
                return
            node = YoloxNode()
            try:
                if node.config.build_only:
                    node.get_logger().info('build_only is true: the model is ready, exiting')
                    return
                if not STOP.is_set():
                    spin_until_stopped([node], node.context)
            finally:
                node.destroy_node()

    return run_entry_point(body)
