"""moe3d-demo: the whole system on a synthetic camera, over real DDS, for a bounded time.

Starts demo_camera (a moving camera in a generated scene, with exact depth on its own topic) and
moe3d_node (the bundled demo model unless --checkpoint is given) as separate processes, watches
the node's outputs, prints live rates, stamp-to-receive latency and AbsRel / boundary F1 against
the ground truth, then writes the fused cloud as a PLY and a PNG panel, and exits. With
--compare a second node runs the DPT-head baseline (namespace /moe3d_dpt) on the same camera:
both heads' numbers are printed, and the panel shows both depths and both clouds. With
--blur-row SIGMA it then blurs the camera's images (its `blur` parameter, set at run time) and adds
a panel row of one blurred frame: the image and each head's cloud of it.
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np

from ..io.checkpoint import DEMO_BASELINE_DIR
from ..io.export import colorize_depth, write_ply, write_png
from ..paths import executable, share_dir

CAMERA_NS = "/demo_camera"
CAMERA_NODE = f"{CAMERA_NS}/demo_camera"
NODE_NS = "/moe3d"
BASELINE_NS = "/moe3d_dpt"
PANEL_WAIT_S = 60.0  # longest wait past --duration for a frame with every panel tile (--compare: both nodes served it)
KEPT_FRAMES = 20  # published frames the monitor keeps for the panel (--compare: both nodes must have one)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="moe3d-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of live operation after the first output")
    parser.add_argument("--rate", type=float, default=None,
                        help="demo camera frame rate [Hz] (default 5; 1 with --compare, so both nodes serve most frames)")
    parser.add_argument("--blur", type=float, default=0.0, metavar="SIGMA",
                        help="Gaussian blur of the camera images, sigma in pixels (the ground truth stays sharp)")
    parser.add_argument("--motion-blur", type=float, default=0.0, metavar="PX",
                        help="blur each camera image along its motion to the next frame, median length PX pixels")
    parser.add_argument("--blur-row", type=float, default=0.0, metavar="SIGMA",
                        help="after --duration, blur the camera images by SIGMA px and add a panel row of one such frame "
                             "(its image and each head's cloud of it); 0: no row")
    parser.add_argument("--checkpoint", default="", help="model for the node (default: the bundled demo model)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    parser.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: a random free-looking one)")
    parser.add_argument("--startup-timeout", type=float, default=120.0)
    parser.add_argument("--scale", choices=("depth", "odometry", "relative"), default="depth",
                        help="the node's scale source: the camera's sparse LiDAR-like depth, its odometry, or none")
    parser.add_argument("--compare", action="store_true",
                        help="also run the DPT-head baseline in a second node and print and draw both")
    parser.add_argument("--baseline", default="", help="the baseline for --compare (default: the bundled DPT demo model)")
    return parser.parse_args(argv)


class Monitor:
    """Subscribes to one node's outputs (under `namespace`) and the ground truth; scores depth by
    matching stamps."""

    def __init__(self, node, namespace: str = NODE_NS, label: str = "") -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self.node, self.namespace, self.label = node, namespace, label
        self.ground_truth: dict[tuple[int, int], np.ndarray] = {}
        self.gt_order: deque = deque(maxlen=50)
        self.images: dict[tuple[int, int], np.ndarray] = {}
        self.gating: dict[tuple[int, int], np.ndarray] = {}  # winning expert per pixel, the last few frames
        self.depths: dict[tuple[int, int], np.ndarray] = {}  # published depth, the last few frames
        self.depth_times: deque = deque(maxlen=200)
        self.gt_times: deque = deque(maxlen=200)
        self.latencies: deque = deque(maxlen=200)
        self.scores: list[tuple[float, float]] = []
        self.edges: list[tuple[float, float]] = []  # per output: share of edge-band pixels published, and mixed among those
        self.metric: list[float] = []  # AbsRel of the published depth as it is, no scale fit
        self.log_scales: list[float] = []  # log(exact / published) per output: its steps are the jitter
        self.last: dict[str, object] = {}
        self.engine: dict[str, str] = {}
        self.intrinsics: np.ndarray | None = None  # the camera's K, for clouds of single frames
        subs = [
            (Image, f"{CAMERA_NS}/depth_gt", self._on_gt),
            (Image, f"{CAMERA_NS}/image_raw", self._on_image),
            (Image, f"{namespace}{CAMERA_NS}/depth/image", self._on_depth),
            (Image, f"{namespace}{CAMERA_NS}/gating", self._on_gating),
            (PointCloud2, f"{namespace}/points", lambda m: self.last.__setitem__("cloud", m)),
            (CameraInfo, f"{CAMERA_NS}/camera_info", lambda m: setattr(self, "intrinsics", np.array(m.k).reshape(3, 3))),
            (DiagnosticArray, "/diagnostics", self._on_diagnostics),
        ]
        self.subs = [node.create_subscription(t, topic, cb, reliable) for t, topic, cb in subs]

    @staticmethod
    def _key(msg) -> tuple[int, int]:
        return msg.header.stamp.sec, msg.header.stamp.nanosec

    def _on_gt(self, msg) -> None:
        key = self._key(msg)
        if len(self.gt_order) == self.gt_order.maxlen:  # keep the last 50 frames only
            oldest = self.gt_order[0]
            self.ground_truth.pop(oldest, None)
            self.images.pop(oldest, None)
        self.gt_order.append(key)
        self.ground_truth[key] = np.frombuffer(msg.data, np.float32).reshape(msg.height, msg.width).copy()
        self.gt_times.append(time.monotonic())

    @staticmethod
    def _keep(frames: dict, key: tuple[int, int], value: np.ndarray) -> None:
        frames[key] = value
        while len(frames) > KEPT_FRAMES:
            frames.pop(next(iter(frames)))

    def _on_gating(self, msg) -> None:
        self._keep(self.gating, self._key(msg), np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width).copy())

    def _on_image(self, msg) -> None:
        self.images[self._key(msg)] = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, 3).copy()

    def _on_depth(self, msg) -> None:
        from ..eval.metrics import depth_metrics, published_edge_scores

        now = time.monotonic()
        self.depth_times.append(now)
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        self.latencies.append(self.node.get_clock().now().nanoseconds * 1e-9 - stamp)
        depth = np.frombuffer(msg.data, np.float32).reshape(msg.height, msg.width).copy()
        self._keep(self.depths, self._key(msg), depth)
        gt = self.ground_truth.get(self._key(msg))
        if gt is None or gt.shape != depth.shape:
            return
        valid = np.isfinite(gt) & np.isfinite(depth) & (gt > 0)
        if valid.sum() < 100:
            return
        metrics = depth_metrics(depth, gt, valid)
        # Only published pixels count (filtered ones are NaN, or +-Inf out of range): as moe3d-eval
        # scores the node's filter (its published_* metrics).
        edges = published_edge_scores(depth, gt)  # published pixels exist: `valid` has 100
        self.scores.append((metrics["abs_rel"], edges["published_boundary_f1"]))
        if np.isfinite(edges["published_edge_share"]):
            self.edges.append((edges["published_edge_share"], edges["published_mixed_ratio"]))
        self.metric.append(float(np.mean(np.abs(depth[valid] - gt[valid]) / gt[valid])))
        self.log_scales.append(float(np.log(np.median(gt[valid] / depth[valid]))))

    def complete_frames(self, baseline_depths: dict | None = None) -> list[tuple[int, int]]:
        """Published frames that have everything the panel shows: the camera image and the ground
        truth, from an MoE model the gating map (its messages trail the depth's) and, when
        comparing, the baseline's depth of the same stamp; oldest first."""
        moe = int(self.engine.get("experts", "0")) > 0 or bool(self.gating)
        return [key for key in self.depths
                if key in self.images and key in self.ground_truth and (not moe or key in self.gating)
                and (baseline_depths is None or key in baseline_depths)]

    def panel_frame(self, baseline_depths: dict | None = None) -> tuple[int, int] | None:
        """The newest complete frame (complete_frames), else the newest published one."""
        complete = self.complete_frames(baseline_depths)
        return complete[-1] if complete else (next(reversed(self.depths)) if self.depths else None)

    def jitter(self) -> float:
        """Median |change of log(implied scale)| between consecutive outputs (0.01 = 1%)."""
        steps = np.abs(np.diff(self.log_scales[-40:]))
        return float(np.median(steps)) if steps.size else float("nan")

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:  # every node publishes on /diagnostics: this monitor's node only
            if status.name == "moe3d: engine" and status.hardware_id == f"{self.namespace}/moe3d_node":
                self.engine = {kv.key: kv.value for kv in status.values}

    @staticmethod
    def rate(times: deque) -> float:
        recent = [t for t in times if time.monotonic() - t < 5.0]
        return (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0

    def line(self) -> str:
        abs_rel = np.mean([s[0] for s in self.scores[-20:]]) if self.scores else float("nan")
        f1 = np.mean([s[1] for s in self.scores[-20:]]) if self.scores else float("nan")
        metric = np.mean(self.metric[-20:]) if self.metric else float("nan")
        edges = np.nanmean(np.array(self.edges[-20:]), axis=0) if self.edges else (float("nan"), float("nan"))
        latency = np.median(self.latencies) * 1000 if self.latencies else float("nan")
        return (f"{self.label}camera {self.rate(self.gt_times):4.1f} Hz | depth out {self.rate(self.depth_times):4.1f} Hz | "
                f"latency {latency:5.0f} ms | inference {float(self.engine.get('inference_time_s', 'nan')) * 1000:5.0f} ms | "
                f"AbsRel {abs_rel:.3f} | boundary F1 {f1:.3f} (published pixels, gaps closed) | edge pixels published {edges[0]:.0%}, "
                f"mixed {edges[1]:.0%} of those | metric AbsRel {metric:.3f} (no fit) | "
                f"scale jitter {self.jitter():.4f} | scale {self.engine.get('scale_value', '?')} "
                f"{self.engine.get('scale_status', '')} | windows {self.engine.get('windows', '0')}")


def cloud_points(msg) -> tuple[np.ndarray, np.ndarray]:
    """xyz [N, 3] and RGB [N, 3] uint8 of a PointCloud2 the node published."""
    from ..ros.conversions import cloud_records

    records = cloud_records(msg).reshape(-1)
    points = np.stack([records["x"], records["y"], records["z"]], axis=-1)
    rgb = records["rgb"]
    return points, np.stack([(rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255], axis=-1).astype(np.uint8)


def mixed_note(depth: np.ndarray | None, gt: np.ndarray | None) -> str:
    """', N% of edge pixels mixed': the share of the frame's depth-edge pixels whose depth lies
    between the two sides (the points strung between an object and the wall), when it can be scored."""
    from ..eval.metrics import mixed_pixel_ratio

    if depth is None or gt is None or depth.shape != gt.shape:
        return ""
    try:
        ratio = mixed_pixel_ratio(depth, gt)
    except ValueError:  # no pixel valid in both
        return ""
    return f", {100 * ratio:.0f}% of edge pixels mixed" if np.isfinite(ratio) else ""


Tile = tuple[str, np.ndarray]  # a caption and an RGB image


def oblique_intrinsics(shape: tuple[int, int]) -> np.ndarray:
    """The K of the panel's cloud views: a wider field of view than the camera's, at the depth image's size."""
    height, width = shape
    return np.array([[width * 0.7, 0, width / 2], [0, width * 0.7, height / 2], [0, 0, 1]])


def write_results(monitor: Monitor, out: Path, baseline: Monitor | None = None) -> tuple[list[str], list[list[Tile]]]:
    """Writes cloud.ply; returns the files written and the panel's rows (of the newest complete frame).

    The panel: a row of what the heads share (camera image, ground truth, gating map), then a row
    per head (depth in the truth's colour scale, error, cloud). With a `baseline` monitor (--compare)
    both clouds are drawn from one oblique viewpoint, where points strung between an object and
    the wall behind it stand out."""
    from ..eval.render import depth_comparison, gating_with_legend, render_points, side_view
    from ..outputs.postprocess import GATING_PALETTE

    out.mkdir(parents=True, exist_ok=True)
    written = []
    cloud = monitor.last.get("cloud")
    key = monitor.panel_frame(baseline.depths if baseline is not None else None)
    if cloud is not None:
        points, colors = cloud_points(cloud)
        count = write_ply(out / "cloud.ply", points, colors)
        written.append(f"{out / 'cloud.ply'} ({count} points)")
    if key is None:
        return written, []
    depth = monitor.depths[key]
    finite = depth[np.isfinite(depth)]
    lo, hi = (np.percentile(finite, [2, 98]) if finite.size else (0.1, 10.0))
    # Three tiles a row, none blank: what the heads share (image, truth, gating), then per head its
    # depth, its error and its cloud.
    shared, head_rows = [], []
    image = monitor.images.get(key)
    if image is not None and image.shape[:2] == depth.shape:
        shared.append(("camera image", image))
    gt = monitor.ground_truth.get(key)
    has_truth = gt is not None and gt.shape == depth.shape
    prefix = "MoE " if baseline is not None else ""
    if has_truth:
        comparison = depth_comparison(depth, gt)
        shared += [(label, tile) for label, tile in comparison if label.startswith("ground truth")]
        head_rows.append([(prefix + label, tile) for label, tile in comparison if not label.startswith("ground truth")])
    else:
        head_rows.append([(f"{prefix}depth (moe3d_node)", colorize_depth(depth, lo, hi))])
    gating = monitor.gating.get(key)
    if gating is not None and gating.shape == depth.shape:
        experts = int(monitor.engine.get("experts", 0)) or int(gating.max()) + 1  # the node's diagnostics say K
        shared.append(("gating (expert shares)", gating_with_legend(gating, experts, GATING_PALETTE)))
    if baseline is not None and key in baseline.depths and has_truth:
        head_rows.append([("DPT " + label, tile) for label, tile in depth_comparison(baseline.depths[key], gt)
                          if not label.startswith("ground truth")])
    clouds = [("fused cloud, side view" if baseline is None else "MoE cloud, oblique view" + mixed_note(depth, gt), cloud)]
    if len(head_rows) > 1 and baseline.last.get("cloud") is not None:
        clouds.append(("DPT cloud, oblique view" + mixed_note(baseline.depths.get(key), gt), baseline.last["cloud"]))
    if cloud is not None and len(points):
        view = side_view(points[np.isfinite(points).all(axis=1)])  # one viewpoint for both clouds
        k = oblique_intrinsics(depth.shape)
        for row, (label, msg) in zip(head_rows, clouds):
            row.append((label, render_points(*cloud_points(msg), view, k, depth.shape)))
    return written, [row for row in (shared, *head_rows) if row]


def blur_row(monitor: Monitor, key: tuple[int, int], sigma: float, baseline: Monitor | None = None) -> list[Tile]:
    """The panel row of one frame taken at `sigma` px blur: its image and each head's cloud of that
    frame alone (its published depth unprojected with the camera's K), from one oblique viewpoint, so
    the points strung between surfaces under blur show; without a baseline, the error between them."""
    import torch

    from ..eval.render import depth_comparison, render_points, side_view
    from ..model.geometry import unproject_depth

    image, gt = monitor.images[key], monitor.ground_truth.get(key)
    heads = [("MoE " if baseline is not None else "", monitor.depths[key])]
    if baseline is not None:
        heads.append(("DPT ", baseline.depths[key]))
    row = [(f"camera image, {sigma:g} px blur", image)]
    if baseline is None and gt is not None:
        row += [(label, tile) for label, tile in depth_comparison(heads[0][1], gt) if label.startswith("rel. error")]
    clouds = []
    for prefix, depth in heads:
        points = unproject_depth(torch.from_numpy(depth), torch.from_numpy(monitor.intrinsics).float()).reshape(-1, 3).numpy()
        clouds.append((f"{prefix}cloud of this frame{mixed_note(depth, gt)}", points))
    first, shape = clouds[0][1], image.shape[:2]
    view, k, colors = side_view(first[np.isfinite(first).all(axis=1)]), oblique_intrinsics(shape), image.reshape(-1, 3)
    return row + [(label, render_points(points, colors, view, k, shape)) for label, points in clouds]


def set_camera_blur(ros_node, sigma: float, timeout_s: float = 10.0) -> tuple[int, int] | None:
    """Sets the demo camera's `blur` parameter; returns the (sec, nanosec) stamp after which its
    frames are blurred, or None when the camera did not accept it in time."""
    import rclpy
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient

    client = AsyncParameterClient(ros_node, CAMERA_NODE)
    if not client.wait_for_services(timeout_sec=timeout_s):
        return None
    future = client.set_parameters([Parameter("blur", value=float(sigma))])
    rclpy.spin_until_future_complete(ros_node, future, timeout_sec=timeout_s)
    result = future.result()
    if result is None or not all(r.successful for r in result.results):
        return None
    return ros_node.get_clock().now().seconds_nanoseconds()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.rate = args.rate or (1.0 if args.compare else 5.0)
    domain = args.domain_id if args.domain_id is not None else random.randint(120, 220)
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               FASTRTPS_DEFAULT_PROFILES_FILE=str(share_dir() / "config" / "fastdds_shm.xml"))
    os.environ.update({k: env[k] for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTRTPS_DEFAULT_PROFILES_FILE")})
    import rclpy

    try:
        from ..data.sensors import CAMERA_IN_BASE

        node_params = [f"image_topics:=['{CAMERA_NS}/image_raw']", f"device:={args.device}", f"scale.mode:={args.scale}"]
        if args.scale == "depth":
            node_params.append(f"scale.depth_topics:=['{CAMERA_NS}/depth_sparse']")
        elif args.scale == "odometry":
            node_params += [f"scale.odometry_topic:={CAMERA_NS}/odom", f"scale.camera_in_base:={list(CAMERA_IN_BASE)}"]
        if args.checkpoint:  # rcl cannot parse an empty override ("checkpoint:="); unset = bundled model
            node_params.append(f"checkpoint:={args.checkpoint}")
        def node_command(params: list[str]) -> list[str]:
            return [executable("moe3d_node"), "--ros-args", "--params-file", str(share_dir() / "config" / "demo.yaml"),
                    *[arg for p in params for arg in ("-p", p)]]

        camera = [executable("moe3d_demo_camera"), "--ros-args", "-p", f"rate:={args.rate}", "-p", f"blur:={float(args.blur)}",
                  "-p", f"motion_blur:={float(args.motion_blur)}"]
        commands = [camera, node_command(node_params)]
        if args.compare:  # the same node with the DPT baseline, under its own namespace
            baseline = [p for p in node_params if not p.startswith("checkpoint:=")]
            baseline.append(f"checkpoint:={args.baseline or DEMO_BASELINE_DIR}")
            commands.append([*node_command(baseline), "-r", f"__ns:={BASELINE_NS}"])
    except FileNotFoundError as exc:
        print(f"moe3d-demo: {exc}", file=sys.stderr)
        return 2
    nodes = "moe3d_node (MoE) and a second one with the DPT baseline" if args.compare else "moe3d_node"
    print(f"moe3d-demo: ROS_DOMAIN_ID={domain}; starting demo_camera ({args.rate:g} Hz) and {nodes} ...", flush=True)
    procs = [subprocess.Popen(cmd, env=env) for cmd in commands]
    rclpy.init(domain_id=domain)
    ros_node = rclpy.create_node("moe3d_demo_monitor")
    monitor = Monitor(ros_node, NODE_NS, "MoE | " if args.compare else "")
    monitors = [monitor] + ([Monitor(ros_node, BASELINE_NS, "DPT | ")] if args.compare else [])
    code = 0
    try:
        deadline = time.monotonic() + args.startup_timeout
        while not all(m.depth_times for m in monitors):
            rclpy.spin_once(ros_node, timeout_sec=0.1)
            if any(p.poll() is not None for p in procs):
                print("moe3d-demo: a process exited during start-up (see its output above)", file=sys.stderr)
                return 1
            if time.monotonic() > deadline:
                print(f"moe3d-demo: no depth output within {args.startup_timeout:.0f} s", file=sys.stderr)
                return 1
        print(f"moe3d-demo: first depth received; scale from {args.scale}; live numbers against the exact depth "
              "(AbsRel and boundary F1 after a scale fit; metric AbsRel as published; scale jitter between outputs):", flush=True)
        end = time.monotonic() + args.duration
        next_print = time.monotonic()
        # Go on (up to PANEL_WAIT_S more) until one frame has every tile: its gating map trails its
        # depth, and with --compare both nodes must have served it, so the panel compares the two
        # heads on the same image (each node serves the frames it keeps up with).
        baseline_depths = monitors[1].depths if args.compare else None
        while time.monotonic() < end or (time.monotonic() < end + PANEL_WAIT_S and not monitor.complete_frames(baseline_depths)):
            rclpy.spin_once(ros_node, timeout_sec=0.05)
            if time.monotonic() >= next_print:
                for m in monitors:
                    print("  " + m.line(), flush=True)
                next_print += 2.0
        baseline = monitors[1] if args.compare else None
        written, rows = write_results(monitor, args.out, baseline)
        for m in monitors:
            print("moe3d-demo: final " + m.line())
        if args.blur_row > 0 and rows:
            row = blurred_row(ros_node, monitor, args.blur_row, baseline)
            if row:
                rows.append(row)
            else:
                print(f"moe3d-demo: no frame at {args.blur_row:g} px blur within {PANEL_WAIT_S:.0f} s: the panel has no blur row",
                      file=sys.stderr)
        if rows:
            from ..eval.render import panel

            write_png(args.out / "panel.png", panel(rows))
            written.append(str(args.out / "panel.png"))
        for path in written:
            print(f"moe3d-demo: wrote {path}")
        print(f"moe3d-demo: panel tiles: {' | '.join(label for row in rows for label, _ in row)}")
    except KeyboardInterrupt:
        code = 130
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        ros_node.destroy_node()
        rclpy.try_shutdown()
    return code


def blurred_row(ros_node, monitor: Monitor, sigma: float, baseline: Monitor | None) -> list[Tile]:
    """Switches the camera to `sigma` px blur, waits for a frame taken after the switch that every
    head served (at most PANEL_WAIT_S), and returns its panel row; [] if none came."""
    import rclpy

    switched = set_camera_blur(ros_node, sigma)
    if switched is None:
        return []
    baseline_depths = baseline.depths if baseline is not None else None
    deadline = time.monotonic() + PANEL_WAIT_S
    while time.monotonic() < deadline:
        rclpy.spin_once(ros_node, timeout_sec=0.05)
        blurred = [key for key in monitor.complete_frames(baseline_depths) if key > switched]
        if blurred and monitor.intrinsics is not None:
            return blur_row(monitor, blurred[-1], sigma, baseline)
    return []


if __name__ == "__main__":
    sys.exit(main())
