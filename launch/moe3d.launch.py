"""Start moe3d_node (and optionally rviz2) with the package's Fast DDS profile.

    ros2 launch moe3d_ros moe3d.launch.py image_topics:="['/front/image_raw']" \
        checkpoint:=/path/to/VGGT-1B/model.pt device:=cuda rviz:=true

    ros2 launch moe3d_ros moe3d.launch.py backend:=onnxruntime onnx_model:=/path/to/model.onnx

`checkpoint`, `image_topics`, `device`, `backend` and `onnx_model` are passed to the node only when
given: otherwise the values of params_file (or the node's defaults) stand. The package's Fast DDS
profile (a larger shared-memory segment for images and clouds) is given to the node's process
only, and only when FASTRTPS_DEFAULT_PROFILES_FILE is not set already. The default rviz2 view
shows the launched namespace and the first camera.
"""
import os
import tempfile
from pathlib import Path

import yaml
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from moe3d_ros.ros.settings import topic_camera_name

NODE_ARGUMENTS = ("checkpoint", "image_topics", "device", "backend", "onnx_model")  # '' = not given
PROFILE_VARIABLE = "FASTRTPS_DEFAULT_PROFILES_FILE"
TEMPLATE_NAMESPACE, TEMPLATE_CAMERA = "/moe3d/", "/moe3d/camera/"  # the topics config/moe3d.rviz names


def _params_file_values(path: str) -> dict:
    """The node's parameters in a params file (`/**` or `moe3d_node` section), or {}."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    for key in ("/**", "moe3d_node", "/moe3d/moe3d_node"):
        if isinstance(data.get(key), dict):
            return data[key].get("ros__parameters", {}) or {}
    return {}


def _camera_names(given: dict, params: dict) -> list[str]:
    topics = given.get("image_topics") or params.get("image_topics") or ["/camera/image_raw"]
    names = list(params.get("camera_names") or [""])
    names = names if len(names) == len(topics) else [""] * len(topics)
    return [name or topic_camera_name(topic, i) for i, (name, topic) in enumerate(zip(names, topics))]


def _rviz_config(context: LaunchContext, namespace: str, camera: str) -> str:
    """The package's rviz2 view with the launched namespace and camera; any other file as given."""
    config = LaunchConfiguration("rviz_config").perform(context)
    default = PathJoinSubstitution([FindPackageShare("moe3d_ros"), "config", "moe3d.rviz"]).perform(context)
    if Path(config).resolve() != Path(default).resolve():
        return config
    prefix = "/" + namespace.strip("/") + "/" if namespace.strip("/") else "/"
    text = Path(config).read_text().replace(TEMPLATE_CAMERA, f"{prefix}{camera}/").replace(TEMPLATE_NAMESPACE, prefix)
    out = Path(tempfile.mkdtemp(prefix="moe3d_rviz_")) / "moe3d.rviz"
    out.write_text(text)
    return str(out)


def _actions(context: LaunchContext) -> list[Node]:
    given = {}
    for name in NODE_ARGUMENTS:
        value = LaunchConfiguration(name).perform(context)
        if value != "":
            given[name] = yaml.safe_load(value) if name == "image_topics" else value
    params_file = LaunchConfiguration("params_file").perform(context)
    namespace = LaunchConfiguration("namespace").perform(context)
    sim_time = {"use_sim_time": yaml.safe_load(LaunchConfiguration("use_sim_time").perform(context)) is True}
    environment = context.environment if hasattr(context, "environment") else os.environ
    profile = {} if environment.get(PROFILE_VARIABLE) else {
        PROFILE_VARIABLE: PathJoinSubstitution([FindPackageShare("moe3d_ros"), "config", "fastdds_shm.xml"]).perform(context)}
    lifecycle = yaml.safe_load(LaunchConfiguration("lifecycle").perform(context)) is True
    actions = [Node(
        package="moe3d_ros",
        executable="moe3d_lifecycle_node" if lifecycle else "moe3d_node",
        name="moe3d_node",
        namespace=namespace,
        parameters=[params_file, given, sim_time],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level").perform(context)],
        additional_env=profile,
        output="screen",
        emulate_tty=True,
    )]
    if yaml.safe_load(LaunchConfiguration("rviz").perform(context)) is True:
        camera = _camera_names(given, _params_file_values(params_file))[0]
        actions.append(Node(package="rviz2", executable="rviz2", arguments=["-d", _rviz_config(context, namespace, camera)],
                            parameters=[sim_time], output="screen"))
    return actions


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("moe3d_ros")
    arguments = [
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "moe3d.yaml"]),
                              description="YAML file with moe3d_node parameters"),
        DeclareLaunchArgument("checkpoint", default_value="",
                              description="VGGT checkpoint or our checkpoint folder; empty = params_file's (default: bundled demo model)"),
        DeclareLaunchArgument("image_topics", default_value="",
                              description="image topics, one per camera, e.g. \"['/camera/image_raw']\"; empty = params_file's"),
        DeclareLaunchArgument("device", default_value="", description="auto, cpu, cuda or cuda:N; empty = params_file's (default auto)"),
        DeclareLaunchArgument("backend", default_value="",
                              description="torch or onnxruntime (with onnx_model); empty = params_file's (default torch)"),
        DeclareLaunchArgument("onnx_model", default_value="",
                              description="model.onnx written by moe3d-export, for backend onnxruntime; empty = params_file's"),
        DeclareLaunchArgument("namespace", default_value="moe3d", description="namespace of the node and its outputs"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (a bag or a simulator) for the node and rviz2"),
        DeclareLaunchArgument("log_level", default_value="info", description="the node's log level: debug, info, warn, error or fatal"),
        DeclareLaunchArgument("lifecycle", default_value="false",
                              description="start the managed (lifecycle) node: configure and activate it, e.g. with nav2's lifecycle_manager"),
        DeclareLaunchArgument("rviz", default_value="false", description="also start rviz2"),
        DeclareLaunchArgument("rviz_config", default_value=PathJoinSubstitution([share, "config", "moe3d.rviz"]),
                              description="rviz2 configuration (the default view follows namespace and the first camera)"),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_actions)])
