"""The hostile-input corpus (bench/hostile_inputs.py) as a test: 1,000 generated hostile messages
on three cameras (raw, compressed, CameraInfo) against the node over DDS."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="rclpy is not installed (ROS 2 or the ros-jazzy-rclpy wheel)")

from ros_harness import domain_id  # noqa: E402

pytestmark = pytest.mark.e2e  # starts ROS processes and talks to them over DDS
SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "hostile_inputs.py"


def test_a_thousand_hostile_messages_crash_nothing_and_leak_into_no_output(tmp_path):
    report_path = tmp_path / "report.json"
    run = subprocess.run([sys.executable, str(SCRIPT), "--messages", "1000", "--domain-id", str(domain_id(8)), "--json", str(report_path)],
                         capture_output=True, text=True, timeout=900)
    assert report_path.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(report_path.read_text())
    print(json.dumps(report, indent=1))
    assert report["hostile_sent"] >= 1000
    assert report["crashes"] == 0 and all(report["still_serving"].values()), report
    assert report["traced_count"] == 0, report["traced_outputs"]
    assert report["garbage_count"] == 0, report["garbage_outputs"]
    rejected = report["node_rejections_by_reason"]
    for reason in ("camera_info", "corrupt", "data_length", "encoding", "frame_id", "size", "stamp", "stamp_jump"):
        assert rejected.get(reason, 0) > 0, (reason, rejected)
    assert max(report["rss_growth_single_message_mb"].values()) < 100
    assert run.returncode == 0
