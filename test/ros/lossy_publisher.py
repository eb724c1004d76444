"""Publish frames of which every second one is too large for Fast DDS's default transports.

    python lossy_publisher.py TOPIC COUNT

Run WITHOUT the large-data profile (config/fastdds_large_data.xml): with Fast DDS defaults a
1920x1280 bgr8 image does not fit the 512 KiB shared-memory segment, so the odd frames
(frame_id '1', '3', ...) never reach a shared-memory-only subscriber while the even 8x8 ones do:
frames lost on purpose, over real DDS. Waits for a subscriber, then sends one frame every 0.1 s.
"""

import array
import sys
import time

import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image


def main() -> int:
    """Publish ``COUNT`` frames on ``TOPIC`` (best effort), alternating small and large."""
    topic, count = sys.argv[1], int(sys.argv[2])
    rclpy.init()
    node = rclpy.create_node('lossy_publisher')
    publisher = node.create_publisher(Image, topic, qos_profile_sensor_data)
    deadline = time.monotonic() + 60
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    for index in range(count):
        height, width = (1280, 1920) if index % 2 else (8, 8)
        msg = Image(height=height, width=width, encoding='bgr8', step=width * 3)
        msg.data = array.array('B', bytes(height * width * 3))
        msg.header.frame_id = str(index)
        publisher.publish(msg)
        time.sleep(0.1)
    time.sleep(0.5)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
