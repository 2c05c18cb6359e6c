"""moe3d_ros: VGGT with a mixture-of-experts depth head, as a ROS 2 package and a plain library."""
__version__ = "0.1.0"
