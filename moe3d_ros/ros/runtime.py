"""The `main` of every node in the package: start-up errors are one FATAL line and exit code 1;
Ctrl-C or SIGTERM is a clean shutdown with exit code 0.

A terminal's Ctrl-C reaches the whole process group, so under `ros2 launch` the node gets
SIGINT twice (from the terminal and from launch). rclpy's own handler would turn the second
one into a KeyboardInterrupt in the middle of `destroy_node`; here both signals only set an
event that the spin loop checks.
"""
from __future__ import annotations

import signal
import sys
import threading
from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

SPIN_PERIOD_S = 0.1


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if text else type(exc).__name__


def run_node(factory: Callable[[], Node], name: str, args: list[str] | None, threads: int = 1) -> int:
    """Create the node with `factory` and spin it; 1 when it cannot start (bad parameters, missing
    checkpoint, an unusable device), 0 after a clean shutdown."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except Exception as exc:  # malformed --ros-args: rcl says what
        print(f"[FATAL] [{name}]: cannot start: {one_line(exc)}", file=sys.stderr)
        return 1
    try:
        node = factory()
    except Exception as exc:  # anything at start-up ends the same way: one line, no traceback
        known = isinstance(exc, (ValueError, FileNotFoundError)) or type(exc).__name__ in ("CheckpointError", "ExportError", "BackendUnavailable")
        reason = one_line(exc) if known else f"{type(exc).__name__}: {one_line(exc)}"
        rclpy.logging.get_logger(name).fatal(f"cannot start: {reason}")
        rclpy.try_shutdown()
        return 1
    executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
    except ExternalShutdownException:
        pass
    finally:
        node.destroy_node()
        executor.shutdown(timeout_sec=5.0)
        rclpy.try_shutdown()
    return 0
