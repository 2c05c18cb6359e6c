"""ROS 2 adapters: the node, message conversions, parameters. The only place that imports rclpy."""
