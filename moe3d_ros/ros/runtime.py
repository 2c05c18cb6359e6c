"""The `main` of every node in the package: start-up errors are fatal with a reason, Ctrl-C is
a clean shutdown."""
from __future__ import annotations

from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node

from ..checkpoint import CheckpointError


def run_node(factory: Callable[[], Node], name: str, args: list[str] | None, threads: int = 1) -> int:
    """Create the node with `factory` and spin it; 1 when it cannot start (bad parameters, missing
    checkpoint), 0 after a clean shutdown."""
    rclpy.init(args=args)
    try:
        node = factory()
    except (ValueError, CheckpointError, FileNotFoundError) as exc:
        rclpy.logging.get_logger(name).fatal(f"cannot start: {exc}")
        rclpy.try_shutdown()
        return 1
    executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
