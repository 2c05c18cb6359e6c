"""Start moe3d_node (and optionally rviz2) with the package's Fast DDS profile.

    ros2 launch moe3d_ros moe3d.launch.py image_topics:="['/front/image_raw']" \
        checkpoint:=/path/to/VGGT-1B/model.pt device:=cuda rviz:=true

    ros2 launch moe3d_ros moe3d.launch.py backend:=onnxruntime onnx_model:=/path/to/model.onnx

`checkpoint`, `image_topics`, `device`, `backend` and `onnx_model` are passed to the node only when
given: otherwise the values of params_file (or the node's defaults) stand.
"""
import yaml
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

NODE_ARGUMENTS = ("checkpoint", "image_topics", "device", "backend", "onnx_model")  # '' = not given


def _node(context: LaunchContext) -> list[Node]:
    given = {}
    for name in NODE_ARGUMENTS:
        value = LaunchConfiguration(name).perform(context)
        if value != "":
            given[name] = yaml.safe_load(value) if name == "image_topics" else value
    return [Node(
        package="moe3d_ros",
        executable="moe3d_node",
        name="moe3d_node",
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("params_file"), given],
        output="screen",
        emulate_tty=True,
    )]


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
        DeclareLaunchArgument("rviz", default_value="false", description="also start rviz2"),
        DeclareLaunchArgument("rviz_config", default_value=PathJoinSubstitution([share, "config", "moe3d.rviz"]),
                              description="rviz2 configuration"),
    ]
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        arguments=["-d", LaunchConfiguration("rviz_config")],
        condition=IfCondition(LaunchConfiguration("rviz")),
        output="screen",
    )
    # Large images and clouds need a bigger shared-memory segment than Fast DDS's default.
    dds_profile = SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", PathJoinSubstitution([share, "config", "fastdds_shm.xml"]))
    return LaunchDescription([*arguments, dds_profile, OpaqueFunction(function=_node), rviz])
