#!/usr/bin/env python3
"""A corpus of hostile and odd messages against moe3d_node, over real DDS between processes.

The node runs in its own process (the small test model, 3 cameras: two raw Image topics and one
CompressedImage topic, each with CameraInfo). This process sends a generated corpus, bad
messages interleaved with good frames, and reports:
- crashes (the node process ended) and whether it still serves good frames at the end;
- outputs traced to bad inputs (any output carrying the stamp of a bad message);
- garbage outputs (a camera_info K or pose that is not finite, a depth or cloud point that is
  inf, a point with some coordinates NaN and others not);
- the node's own per-reason rejection counts (from /diagnostics) against what was sent;
- the worst resident-memory growth after a single hostile message (each of the large-footprint
  kinds sent alone, RSS measured before and after).

    python bench/hostile_inputs.py [--messages 1000] [--seed 0] [--json report.json]

`--messages` counts the hostile messages; good frames (about 30% of all sent) come on top.

Exit code 0 when there was no crash, no traced and no garbage output.
"""
from __future__ import annotations

import argparse
import array
import json
import os
import struct
import sys
import tempfile
import time
import zlib
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "test"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

CAMERAS = ("raw_a", "raw_b", "jpeg_c")
NS = 1_000_000_000
SIZE = (120, 160)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _huge_png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(bytes(min(width * 3 + 1, 1 << 16)) * 4, 9)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")


class Corpus:
    """Generated messages: (camera, topic kind 'image'|'info', message, bad kind or '')."""

    def __init__(self, seed: int) -> None:
        from moe3d_ros.ros.conversions import camera_info_msg, rgb_to_image_msg

        self.rng = np.random.default_rng(seed)
        self.rgb = self.rng.integers(0, 256, SIZE + (3,), dtype=np.uint8)
        self.rgb_to_image_msg, self.camera_info_msg = rgb_to_image_msg, camera_info_msg
        self.jpeg = cv2.imencode(".jpg", self.rgb)[1].tobytes()
        self.png = cv2.imencode(".png", self.rgb)[1].tobytes()
        self.k = np.array([[150.0, 0, 79.5], [0, 150.0, 59.5], [0, 0, 1]])

    def header(self, camera: int, stamp_ns: int, frame_id: str | None = None):
        from std_msgs.msg import Header

        header = Header(frame_id=frame_id if frame_id is not None else f"{CAMERAS[camera]}_optical_frame")
        header.stamp.sec, header.stamp.nanosec = divmod(stamp_ns, NS)
        return header

    def good(self, camera: int, stamp_ns: int):
        header = self.header(camera, stamp_ns)
        if CAMERAS[camera].startswith("jpeg"):
            from sensor_msgs.msg import CompressedImage

            image = CompressedImage(header=header, format="jpeg", data=array.array("B", self.jpeg))
        else:
            image = self.rgb_to_image_msg(self.rgb, "bgr8", header)
        return [(camera, "info", self.camera_info_msg(self.k, SIZE[1], SIZE[0], header), ""), (camera, "image", image, "")]

    def bad(self, camera: int, stamp_ns: int) -> tuple[str, object, str]:
        """One hostile message for `camera`; returns (bad kind, message, topic kind)."""
        rng = self.rng
        compressed = CAMERAS[camera].startswith("jpeg")
        kinds = ["stamp_nanosec", "stamp_zero", "stamp_2038", "stamp_1970", "frame_id_empty", "frame_id_long",
                 "frame_id_control", "info_nan_focal", "info_inf_focal", "info_tiny_focal", "info_nan_center",
                 "info_negative_focal", "info_wrong_size"]
        kinds += (["jpeg_truncated", "png_truncated", "png_crc", "random_bytes", "empty_data", "gif", "huge_png", "jpeg_no_frame"]
                  if compressed else ["encoding_unknown", "encoding_long", "zero_size", "step_short", "data_short",
                                      "data_long", "tall_1x20000", "wide_8000x1", "huge_declared"])
        kind = str(rng.choice(kinds))
        header = self.header(camera, stamp_ns)
        if kind.startswith("info_"):
            k = self.k.copy()
            width, height = SIZE[1], SIZE[0]
            if kind == "info_nan_focal":
                k[0, 0] = np.nan
            elif kind == "info_inf_focal":
                k[1, 1] = np.inf
            elif kind == "info_tiny_focal":
                k[0, 0] = k[1, 1] = 1e-300
            elif kind == "info_nan_center":
                k[0, 2] = np.nan
            elif kind == "info_negative_focal":
                k[0, 0] = -150.0
            else:
                width, height = 640, 480
            return kind, self.camera_info_msg(k, width, height, header), "info"
        if kind.startswith("stamp_"):
            if kind == "stamp_nanosec":
                header.stamp.nanosec = int(rng.integers(NS, 2**32))
            elif kind == "stamp_zero":
                header.stamp.sec, header.stamp.nanosec = 0, 0
            elif kind == "stamp_2038":
                header.stamp.sec = 2145916800 + int(rng.integers(0, 10**6))
            else:
                header.stamp.sec = int(rng.integers(1, 10**6))
        elif kind == "frame_id_empty":
            header.frame_id = ""
        elif kind == "frame_id_long":
            header.frame_id = "f" * int(rng.integers(300, 10_000))
        elif kind == "frame_id_control":
            header.frame_id = "cam\x1b[31m\x07\t"  # (a NUL would end the string in transport)
        if compressed:
            from sensor_msgs.msg import CompressedImage

            data = {"jpeg_truncated": self.jpeg[: int(rng.integers(4, len(self.jpeg) - 2))],
                    "png_truncated": self.png[: int(rng.integers(16, len(self.png) - 12))],
                    "png_crc": self.png[:40] + bytes([self.png[40] ^ 0x5A]) + self.png[41:],
                    "random_bytes": b"\xff\xd8" + rng.integers(0, 256, int(rng.integers(10, 5000)), dtype=np.uint8).tobytes(),
                    "empty_data": b"", "gif": b"GIF89a" + bytes(100), "huge_png": _huge_png(12000, 12000),
                    "jpeg_no_frame": b"\xff\xd8\xff\xda\x00\x02" + bytes(64) + b"\xff\xd9"}.get(kind, self.jpeg)
            return kind, CompressedImage(header=header, format=str(rng.choice(["jpeg", "png", "x" * 1000])),
                                         data=array.array("B", data)), "image"
        msg = self.rgb_to_image_msg(self.rgb, "rgb8", header)
        if kind == "encoding_unknown":
            msg.encoding = str(rng.choice(["yuv422", "32FC1", "", "bayer_rggb8", "RGB8"]))
        elif kind == "encoding_long":
            msg.encoding = "e" * 100_000
        elif kind == "zero_size":
            msg.width = msg.height = 0
            msg.step = 0
            msg.data = array.array("B")
        elif kind == "step_short":
            msg.step = 10
        elif kind == "data_short":
            msg.data = array.array("B", bytes(int(rng.integers(0, 1000))))
        elif kind == "data_long":
            msg.data = array.array("B", bytes(len(msg.data) + 7))
        elif kind == "tall_1x20000":
            msg = self.rgb_to_image_msg(np.zeros((20000, 1, 3), np.uint8), "rgb8", header)
        elif kind == "wide_8000x1":
            msg = self.rgb_to_image_msg(np.zeros((1, 8000, 3), np.uint8), "rgb8", header)
        elif kind == "huge_declared":
            msg.width, msg.height, msg.step = 100_000, 100_000, 300_000
        return kind, msg, "image"


def _garbage(name: str, msg) -> str:
    """Why an output message is garbage, or ''."""
    from moe3d_ros.ros.conversions import cloud_records

    if name.endswith("camera_info"):
        return "" if np.isfinite(msg.k).all() and np.isfinite(msg.p).all() else "non-finite K"
    if name.endswith("depth/image"):
        return "inf depth" if np.isinf(np.frombuffer(msg.data, np.float32)).any() else ""
    if name == "points":
        records = cloud_records(msg)
        xyz = np.stack([records["x"], records["y"], records["z"]], -1)
        finite = np.isfinite(xyz)
        return "" if (finite.all(-1) | np.isnan(xyz).all(-1)).all() else "inf or partly NaN points"
    if name == "poses":
        values = [v for p in msg.poses for v in (p.position.x, p.position.y, p.position.z, p.orientation.x, p.orientation.y,
                                                 p.orientation.z, p.orientation.w)]
        return "" if np.isfinite(values).all() else "non-finite pose"
    return ""


def run(messages: int, seed: int, domain_id: int, log_dir: Path) -> dict:
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from ros_harness import NodeProcess, make_small_model, probe_node, spin_once, spin_until
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    checkpoint = make_small_model(log_dir / "model")
    topics = [f"/{c}/image_raw" + ("/compressed" if c.startswith("jpeg") else "") for c in CAMERAS]
    proc = NodeProcess(domain_id, {"checkpoint": str(checkpoint), "image_topics": topics, "window_size": 3,
                                   "diagnostics_period": 0.25, "filter.min_confidence": 0.0}, log_dir)
    cleanup = ExitStack()
    node = cleanup.enter_context(probe_node(domain_id, "hostile_inputs"))
    try:
        corpus = Corpus(seed)
        images = [node.create_publisher(CompressedImage if c.startswith("jpeg") else Image, t, qos) for c, t in zip(CAMERAS, topics)]
        infos = [node.create_publisher(CameraInfo, f"/{c}/camera_info", qos) for c in CAMERAS]
        outputs: dict[str, list] = {}
        names = {"points": PointCloud2, "poses": PoseArray}
        for c in CAMERAS:
            names.update({f"{c}/depth/image": Image, f"{c}/depth/camera_info": CameraInfo})
        subs = [node.create_subscription(t, f"/moe3d/{n}", lambda m, n=n: outputs.setdefault(n, []).append(m), qos)
                for n, t in names.items()]
        diagnostics: dict[str, dict] = {}
        node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diagnostics.update(
            {s.name: {kv.key: kv.value for kv in s.values} for s in m.status}), 10)
        spin_until(node, lambda: all(p.get_subscription_count() > 0 for p in images + infos)
                   and all(s.get_publisher_count() > 0 for s in subs), 120, "the node's topics", proc)

        def pace(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                spin_once(node, timeout_sec=0.01)

        def send(camera: int, kind: str, msg) -> None:
            (infos if kind == "info" else images)[camera].publish(msg)

        pace(1.5)  # input_qos auto: reliable subscriptions now
        for i in range(3):  # every camera serving first
            for camera in range(len(CAMERAS)):
                for entry in corpus.good(camera, time.time_ns()):
                    send(*entry[:3])
            pace(0.3)
        # The worst single message for memory: each large-footprint kind alone.
        rss_growth = {}
        for camera, kind in [(0, "tall_1x20000"), (0, "wide_8000x1"), (0, "huge_declared"), (2, "huge_png")]:
            while True:
                bad_kind, msg, topic = corpus.bad(camera, time.time_ns())
                if bad_kind == kind:
                    break
            pace(0.5)
            before = proc.rss_mb()
            send(camera, topic, msg)
            pace(1.0)
            rss_growth[kind] = round(proc.rss_mb() - before, 1)
        bad_stamps: dict[int, str] = {}
        sent = Counter()
        good_sent = 0
        rss = [proc.rss_mb()]
        i = 0
        while sum(sent.values()) < messages:
            i += 1
            camera = int(corpus.rng.integers(0, len(CAMERAS)))
            stamp = time.time_ns()
            if corpus.rng.random() < 0.3:
                for entry in corpus.good(camera, stamp):
                    send(*entry[:3])
                good_sent += 1
            else:
                kind, msg, topic = corpus.bad(camera, stamp)
                send(camera, topic, msg)
                sent[kind] += 1
                bad_stamps[msg.header.stamp.sec * NS + msg.header.stamp.nanosec] = kind  # no good message has it
            pace(0.02)
            if i % 100 == 0:
                rss.append(proc.rss_mb())
                if proc.proc.poll() is not None:
                    break
        crashed = proc.proc.poll() is not None
        # Still serving: good frames of every camera produce outputs.
        final = []
        if not crashed:
            for _ in range(10):
                stamp = time.time_ns()
                final.append(stamp)
                for camera in range(len(CAMERAS)):
                    for entry in corpus.good(camera, stamp + camera):
                        send(*entry[:3])
                pace(0.4)
            pace(2.0)
        traced, garbage = [], []
        for name, msgs in outputs.items():
            for msg in msgs:
                kind = bad_stamps.get(msg.header.stamp.sec * NS + msg.header.stamp.nanosec)
                if kind is not None:
                    traced.append(f"{name} from {kind} @ {msg.header.stamp.sec}.{msg.header.stamp.nanosec:09d}")
                reason = _garbage(name, msg)
                if reason:
                    garbage.append(f"{name}: {reason}")
        served = {c: any(m.header.stamp.sec * NS + m.header.stamp.nanosec - i in final
                         for m in outputs.get(f"{c}/depth/image", [])) for i, c in enumerate(CAMERAS)}
        counted = Counter()
        for c in CAMERAS:
            for key, value in diagnostics.get(f"moe3d: camera {c}", {}).items():
                if key.startswith("rejected_") and value.isdigit():
                    counted[key[len("rejected_"):]] += int(value)
        return {
            "hostile_sent": sum(sent.values()), "good_frames_sent": good_sent, "bad_by_kind": dict(sorted(sent.items())),
            "node_rejections_by_reason": dict(sorted(counted.items())), "crashes": int(crashed),
            "still_serving": served, "traced_outputs": traced[:20], "traced_count": len(traced),
            "garbage_outputs": garbage[:20], "garbage_count": len(garbage),
            "outputs": {n: len(m) for n, m in sorted(outputs.items())},
            "rss_mb_during_corpus": {"start": round(rss[0], 1), "max": round(max(rss), 1), "end": round(rss[-1], 1)},
            "rss_growth_single_message_mb": rss_growth,
            "decoder_messages": diagnostics.get("moe3d: engine", {}).get("decoder_messages", "?"),
        }
    finally:
        proc.stop()
        cleanup.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000, help="hostile messages to send")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--domain-id", type=int, default=200 + os.getpid() % 30)
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    with tempfile.TemporaryDirectory() as folder:
        report = run(args.messages, args.seed, args.domain_id, Path(folder))
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    ok = report["crashes"] == 0 and report["traced_count"] == 0 and report["garbage_count"] == 0 and all(report["still_serving"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
