"""/diagnostics of the node: one status per camera (health from the recent past, counts, input QoS)
and one for the engine (model, device, errors, timing, scale)."""
from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

from ..intake.health import ERROR, OK, WARN
from ..outputs.scale import publishable
from .subscriptions import Intake
from .worker import Worker

ENGINE_ERROR_HOLD_S = 10.0  # the engine status stays ERROR this long after a failed window
LEVELS = {OK: DiagnosticStatus.OK, WARN: DiagnosticStatus.WARN, ERROR: DiagnosticStatus.ERROR}


class NodeDiagnostics:
    """Builds the node's DiagnosticArray from the intake's and the worker's state."""

    def __init__(self, node: Node, intake: Intake, worker: Worker, model_description: str, experts: int) -> None:
        self.node, self.intake, self.worker = node, intake, worker
        self.model_description, self.experts = model_description, experts

    def message(self) -> DiagnosticArray:
        now = time.monotonic()
        msg = DiagnosticArray()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.status = self._cameras(now) + [self._engine(now)]
        return msg

    def _status(self, name: str, level: bytes, message: str, values: dict) -> DiagnosticStatus:
        entry = DiagnosticStatus(level=level, name=name, message=message, hardware_id=self.node.get_fully_qualified_name())
        entry.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        return entry

    def _cameras(self, now: float) -> list[DiagnosticStatus]:
        qos = self.intake.qos_in_use()
        statuses = []
        for camera, count in zip(self.intake.cameras, self.intake.window.stats()):
            report = camera.health.report(now, self.worker.stats.window_s)
            values = {
                "topic": camera.image_topic, "input_qos": qos.get(camera.image_topic, ""), **report.values,
                "dropped_superseded": count.superseded, "stale_windows": count.stale_windows,
                "stamp_resyncs": camera.stamps.resyncs, "camera_info": "yes" if len(camera.infos) else "no",
            }
            statuses.append(self._status(f"moe3d: camera {camera.name}", LEVELS[report.level], report.message, values))
        return statuses

    def _engine(self, now: float) -> DiagnosticStatus:
        worker, stats, engine = self.worker, self.worker.stats, self.worker.engine
        recent_error = now - stats.last_error_time <= ENGINE_ERROR_HOLD_S
        estimate, scale_mode = worker.last_scale, worker.settings.scale_mode
        values = {
            "model": self.model_description, "backend": engine.backend, "onnx_provider": engine.provider or "n/a",
            "device": engine.description, "windows": stats.windows,
            "idle_skips_no_subscriber": stats.idle_skips, "errors": stats.errors, "out_of_memory": stats.oom,
            "last_error": stats.last_error, "decoder_messages": stats.decoder_messages,
            "withheld_invalid_outputs": stats.invalid_outputs,
            "warm_up_s": round(stats.warm_up_s, 1),
            "experts": self.experts,
            "encoder_cache_hits": engine.cache.hits if engine.cache else "off",
            "encoder_cache_misses": engine.cache.misses if engine.cache else "off",
            "inference_time_s": f"{stats.inference_s:.4f}", "host_time_s": f"{stats.host_s:.4f}",
            "stamp_to_publish_latency_s": f"{stats.latency_s:.4f}",
            "scale": scale_mode if scale_mode != "relative" else "relative (up to scale)",
            "scale_value": f"{estimate.scale:.6g}", "scale_status": estimate.status, "scale_samples": estimate.samples,
            "scale_uncertainty": f"{estimate.uncertainty:.4f}", "scale_reason": estimate.reason,
            "scale_resets": worker.scale.resets, "scale_outliers": worker.scale.outliers,
            "withheld_unscaled_windows": stats.unscaled_withheld,
        }
        if recent_error:
            return self._status("moe3d: engine", DiagnosticStatus.ERROR, stats.last_error, values)
        if not publishable(scale_mode, estimate, worker.settings.scale_publish_unscaled):
            reason = f" ({estimate.reason})" if estimate.reason else ""
            message = f"no metric scale yet: nothing published until the first {scale_mode} measurement{reason}"
            return self._status("moe3d: engine", DiagnosticStatus.WARN, message, values)
        return self._status("moe3d: engine", DiagnosticStatus.OK, "ok", values)
