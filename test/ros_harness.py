"""Helpers for end-to-end tests: the node as its own process over real DDS.

Each test module talks on its own ROS_DOMAIN_ID with localhost-only discovery, waits on matched
publisher/subscription counts (never fixed sleeps) and starts the node through its installed
entry point.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from moe3d_ros.io.checkpoint import save_model
from moe3d_ros.model import VGGT, MoEConfig, preset
from moe3d_ros.paths import executable

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DDS_PROFILE = PROJECT_ROOT / "config" / "fastdds_shm.xml"
NUM_EXPERTS = 4

rclpy = pytest.importorskip("rclpy", reason="rclpy is not installed (ROS 2 or the ros-jazzy-rclpy wheel)")
import rclpy.context  # noqa: E402
import rclpy.executors  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # the test process discovers on this host only


def domain_id(module: int) -> int:
    """The ROS domain of one test module (a number 2..27 of its own) in this pytest worker: modules
    and parallel xdist workers never share a DDS domain (Fast DDS takes ids up to 232)."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    return module * 8 + worker % 8


def ros_environment(domain_id: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ROS_DOMAIN_ID=str(domain_id),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        FASTRTPS_DEFAULT_PROFILES_FILE=str(DDS_PROFILE),
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS="1",
    )
    return env


def node_executable(name: str = "moe3d_node") -> str:
    """The installed entry point (colcon's lib/moe3d_ros/<name>, or <name> of a pip install)."""
    try:
        return executable(name)
    except FileNotFoundError as exc:
        pytest.fail(str(exc))


class NodeProcess:
    """moe3d_node in its own process; its output goes to a log file shown on failure."""

    def __init__(self, domain_id: int, parameters: dict[str, Any], log_dir: Path, extra_env: dict[str, str] | None = None,
                 params_file: Path | None = None, dds_profile: bool = True, new_session: bool = False,
                 executable_name: str = "moe3d_node") -> None:
        args = [node_executable(executable_name), "--ros-args"]
        if params_file is not None:
            args += ["--params-file", str(params_file)]
        for key, value in parameters.items():
            args += ["-p", f"{key}:={format_param(value)}"]
        env = ros_environment(domain_id)
        if not dds_profile:
            env.pop("FASTRTPS_DEFAULT_PROFILES_FILE")
        env.update(extra_env or {})
        self.log_path = log_dir / f"node_{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=new_session)

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT: a clean rclpy shutdown
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")


def format_param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(f"'{v}'" if isinstance(v, str) else str(v) for v in value) + "]"
    return str(value)


_EXECUTORS: dict[int, object] = {}


def spin_once(node, timeout_sec: float) -> None:
    """Process callbacks of `node` (in a non-default context) for up to timeout_sec."""
    executor = _EXECUTORS.get(id(node))
    if executor is None:
        executor = _EXECUTORS[id(node)] = rclpy.executors.SingleThreadedExecutor(context=node.context)
        executor.add_node(node)
    executor.spin_once(timeout_sec=timeout_sec)


def spin_until(node, predicate: Callable[[], bool], timeout: float, what: str, proc: NodeProcess | None = None) -> None:
    """Spin `node` until predicate() holds; fail with the node's log after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.proc.poll() is not None:
            pytest.fail(f"node exited ({proc.proc.returncode}) while waiting for {what}:\n{proc.output()[-4000:]}")
        if time.monotonic() > deadline:
            log = proc.output()[-4000:] if proc is not None else ""
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{log}")
        spin_once(node, timeout_sec=0.05)


def republish_until(node, publish: Callable[[], None], done: Callable[[], bool], every: float, what: str,
                    proc: NodeProcess, timeout: float = 60) -> None:
    """publish() every `every` seconds until done(): a message can be lost (a best-effort input, or
    one sent while input_qos replaces a subscription). Fails at once when the node exits."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, proc.output()[-3000:]
        publish()
        try:
            spin_until(node, done, every, what, proc)
        except pytest.fail.Exception:
            if proc.proc.poll() is not None:
                raise


@contextmanager
def probe_node(domain_id: int, name: str):
    """A node of this process on `domain_id`, in its own rclpy context."""
    context = rclpy.context.Context()
    rclpy.init(context=context, domain_id=domain_id)
    node = rclpy.create_node(name, context=context)
    try:
        yield node
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


def ros_test_node(domain_id: int, name: str):
    """probe_node as a generator for pytest fixtures."""
    with probe_node(domain_id, name) as node:
        yield node


class Diagnostics:
    """The newest status of every /diagnostics name, as key -> value (plus message and level)."""

    def __init__(self, node) -> None:
        self.latest: dict[str, dict[str, str]] = {}
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on, 10)

    def _on(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            self.latest[status.name] = {"message": status.message, "level": status.level,
                                        **{kv.key: kv.value for kv in status.values}}

    def value(self, name: str, key: str, default: str = "0") -> str:
        return self.latest.get(name, {}).get(key, default)


def make_small_model(folder: Path) -> Path:
    """A tiny VGGT with an MoE head at 224 px, random weights, gate made non-uniform."""
    torch.manual_seed(0)
    config = dataclasses.replace(preset("tiny").with_moe(MoEConfig(num_experts=NUM_EXPERTS)), img_size=224)
    model = VGGT(config)
    torch.nn.init.normal_(model.depth_head.gate.conv2.weight, std=0.5)
    with torch.no_grad():  # a field of view of about 1 rad, not relu's 0 (an infinite focal length)
        model.camera_head.pose_branch.fc2.bias[7:9] += 0.3
    return save_model(model, folder, metadata={"description": "tiny random test model"})
