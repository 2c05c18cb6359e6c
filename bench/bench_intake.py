#!/usr/bin/env python3
"""Frames that reach moe3d_node from a camera driver in its own process, as robots have one.

A separate process publishes 640x480 rgb8 (900 KB) at 5 Hz, with the default QoS (reliable) or
the sensor-data QoS (best effort), with the default DDS settings or with the package's
shared-memory profile (config/fastdds_shm.xml) loaded in the camera's process. The node runs in
a third process with input_qos auto or sensor_data; the count is the node's own `accepted`
counter from /diagnostics.

    python bench/bench_intake.py [--frames 40] [--rate 5]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "test"))

CASES = [  # camera QoS, camera loads the SHM profile, node input_qos
    ("default (reliable)", False, "sensor_data"),
    ("default (reliable)", False, "auto"),
    ("sensor_data (best effort)", False, "auto"),
    ("sensor_data (best effort)", True, "auto"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--domain-id", type=int, default=150 + os.getpid() % 30)
    args = parser.parse_args(argv)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    import json
    import subprocess

    from ros_harness import Diagnostics, NodeProcess, make_small_model, probe_node, ros_environment, spin_once, spin_until

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = make_small_model(Path(folder) / "model")
        with probe_node(args.domain_id, "bench_intake") as probe:
            diagnostics = Diagnostics(probe)
            for index, (camera_qos, profile, input_qos) in enumerate(CASES):
                topic = f"/bench{index}/image_raw"
                proc = NodeProcess(args.domain_id, {"checkpoint": str(checkpoint), "image_topics": [topic], "input_qos": input_qos,
                                                    "camera_info_topics": ["none"], "diagnostics_period": 0.2}, Path(folder))
                try:
                    name = f"moe3d: camera bench{index}"
                    spin_until(probe, lambda: name in diagnostics.latest, 60, "the node", proc)
                    env = ros_environment(args.domain_id)
                    if not profile:
                        env.pop("FASTRTPS_DEFAULT_PROFILES_FILE")
                    run = subprocess.run([sys.executable, str(ROOT / "test" / "camera_process.py"), "--topic", topic, "--qos",
                                          camera_qos.split()[0], "--frames", str(args.frames), "--rate", str(args.rate)],
                                         env=env, capture_output=True, text=True, timeout=300)
                    published = json.loads(run.stdout.strip().splitlines()[-1])["published"]
                    settle = time.monotonic() + 3.0  # the last diagnostics; fewer than published may have arrived
                    while time.monotonic() < settle and int(diagnostics.value(name, "accepted")) < published:
                        spin_once(probe, 0.05)
                    accepted = int(diagnostics.value(name, "accepted"))
                    rows.append((camera_qos, "SHM profile" if profile else "default", input_qos, published, accepted))
                finally:
                    proc.stop()
    print(f"\n640x480 rgb8 at {args.rate:g} Hz from a separate camera process, {args.frames} frames\n")
    print("| camera QoS | camera's DDS settings | node input_qos | published | accepted by the node | share |")
    print("|---|---|---|---:|---:|---:|")
    for camera_qos, dds, input_qos, published, accepted in rows:
        print(f"| {camera_qos} | {dds} | {input_qos} | {published} | {accepted} | {accepted / max(published, 1):.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
