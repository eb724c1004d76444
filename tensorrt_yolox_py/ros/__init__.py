"""The thin ROS 2 adapter: node, image conversion, vision_msgs building, multi-camera runner.

Only ``node``, ``messages`` and ``multi_camera`` import rclpy / message packages (lazily, at
use); ``image_conversion``, ``camera_mapping`` and ``worker`` are ROS-free and tested without
ROS.
"""
