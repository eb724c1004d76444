"""The input subscription's DDS events, counted: frames lost before the node, QoS mismatches.

Contract of ``subscription_events(stats, warn)``: returns rclpy ``SubscriptionEventCallbacks``
for ``Node.create_subscription(..., event_callbacks=...)`` with

- ``message_lost`` (``QoSMessageLostInfo``: ``total_count``, ``total_count_change``): adds
  ``total_count_change`` to ``stats.lost``. Frames DDS saw sent but never delivered (a gap in
  the writer's sequence numbers: a frame too large for the transport, a full shared-memory
  queue). Frames that arrived and were replaced in the keep-last-1 reader history before the
  executor took them are not DDS losses and are not in this count (the input keeps the newest
  frame by design). Fast DDS 3 (Kilted) also reports a change of 2**31 - 1 or more when a
  fragmented sample is abandoned (int32 arithmetic on its side); such a change says nothing
  about how many frames were lost, is not added, and is logged once through ``warn``.
- ``incompatible_qos`` (``QoSRequestedIncompatibleQoSInfo``: ``total_count_change``,
  ``last_policy_kind``): ``stats.incompatible_qos(change, policy name)`` (the node reports
  ERROR until a frame arrives) and ``warn`` with the fix.

rclpy API used (present in Humble, Jazzy and Kilted): ``SubscriptionEventCallbacks(
message_lost=, incompatible_qos=)`` from ``rclpy.event_handler`` (Iron and later) or
``rclpy.qos_event`` (Humble; deprecated later), the two info types' fields above, and
``rclpy.qos.QoSPolicyKind`` for the policy name.
"""

from typing import Any, Callable

from .worker import FrameStats

try:    # Iron, Jazzy, Kilted
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:     # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks

#: A lost-count change this large is Fast DDS int32 arithmetic, not a number of frames.
IMPLAUSIBLE_CHANGE = 2 ** 31 - 1


def policy_name(kind: Any) -> str:
    """Return the QoS policy's name ('RELIABILITY', ...) from a ``QoSPolicyKind`` or int."""
    try:
        from rclpy.qos import QoSPolicyKind

        return QoSPolicyKind(int(kind)).name
    except (ImportError, ValueError, TypeError):
        return str(kind)


def subscription_events(stats: FrameStats, warn: Callable[[str, str], None]
                        ) -> SubscriptionEventCallbacks:
    """Return the event callbacks that count into ``stats``; see the module contract."""
    def on_lost(info: Any) -> None:
        change = int(info.total_count_change)
        if 0 < change < IMPLAUSIBLE_CHANGE:
            stats.count('lost', change)
        elif change:
            warn('dds:implausible-loss', f'DDS reported a message-lost change of {change} '
                 '(not a frame count; not added to the lost counter)')

    def on_incompatible(info: Any) -> None:
        policy = policy_name(info.last_policy_kind)
        stats.incompatible_qos(int(info.total_count_change), policy)
        warn('dds:incompatible-qos', f'a publisher of the input topic has incompatible QoS '
             f'({policy}): it delivers nothing. Fix: publish with a compatible {policy} or '
             'set qos_overrides.<topic>.subscription.' + policy.lower())

    return SubscriptionEventCallbacks(message_lost=on_lost, incompatible_qos=on_incompatible)
