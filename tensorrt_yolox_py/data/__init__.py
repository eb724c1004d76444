"""Rosbag reading and writing of camera images (``rosbag_io``) and the sample bag."""
