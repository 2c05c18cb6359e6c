"""moe3d_lifecycle_node: moe3d_node as a managed (lifecycle) node, for stacks whose
lifecycle_manager brings nodes up in order (nav2).

    configure   read and check the parameters, load the model (the slow part)
    activate    subscribe, start the worker, publish (outputs and /diagnostics)
    deactivate  stop publishing and the worker, unsubscribe; the model stays loaded
    cleanup     free the model
    shutdown    all of the above that applies

Parameters and topics are moe3d_node's. A bad parameter or a missing checkpoint fails
`configure` with the reason in the log (the node stays unconfigured and can be configured again).
"""
from __future__ import annotations

import torch
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from . import settings as params
from .node import Configured, Running, apply_parameters, configure, started_words
from .runtime import one_line, run_node


class Moe3dLifecycleNode(LifecycleNode):
    def __init__(self, **kwargs) -> None:
        super().__init__("moe3d_node", namespace="moe3d", **kwargs)
        params.declare(self)  # a wrongly typed value still stops the process at start-up, with its fix
        self.configured: Configured | None = None
        self.running: Running | None = None
        self.add_on_set_parameters_callback(lambda changes: apply_parameters(self.configured, self.running, changes))

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.configured = configure(self)
        except Exception as exc:  # the reason in one line; the node stays unconfigured
            self.get_logger().error(f"configure failed: {one_line(exc)}")
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info("configured: " + started_words(self, self.configured))
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.running = Running(self, self.configured)
        self.get_logger().info("active: subscribed and publishing")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        self.get_logger().info("inactive: unsubscribed, nothing published; the model stays loaded")
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._free()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop()
        self._free()
        return TransitionCallbackReturn.SUCCESS

    def _stop(self) -> None:
        if self.running is not None:
            self.running.stop()
            self.running = None

    def _free(self) -> None:
        if self.configured is not None:
            self.configured.engine.release()
            self.configured = None
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def destroy_node(self) -> None:
        self._stop()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(Moe3dLifecycleNode, "moe3d_node", args, threads=2)


if __name__ == "__main__":
    raise SystemExit(main())
