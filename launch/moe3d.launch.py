"""Start moe3d_node (and optionally rviz2) with the package's Fast DDS profile.

    ros2 launch moe3d_ros moe3d.launch.py image_topics:="['/front/image_raw']" \
        checkpoint:=/path/to/VGGT-1B/model.pt device:=cuda rviz:=true

Launch arguments override the values of params_file.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("moe3d_ros")
    arguments = [
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "moe3d.yaml"]),
                              description="YAML file with moe3d_node parameters"),
        DeclareLaunchArgument("checkpoint", default_value="",
                              description="VGGT checkpoint or our checkpoint folder; empty = bundled synthetic demo model"),
        DeclareLaunchArgument("image_topics", default_value="['/camera/image_raw']", description="image topics, one per camera"),
        DeclareLaunchArgument("device", default_value="auto", description="auto, cpu, cuda or cuda:N"),
        DeclareLaunchArgument("namespace", default_value="moe3d", description="namespace of the node and its outputs"),
        DeclareLaunchArgument("rviz", default_value="false", description="also start rviz2"),
        DeclareLaunchArgument("rviz_config", default_value=PathJoinSubstitution([share, "config", "moe3d.rviz"]),
                              description="rviz2 configuration"),
    ]
    node = Node(
        package="moe3d_ros",
        executable="moe3d_node",
        name="moe3d_node",
        namespace=LaunchConfiguration("namespace"),
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "checkpoint": LaunchConfiguration("checkpoint"),
                "image_topics": LaunchConfiguration("image_topics"),
                "device": LaunchConfiguration("device"),
            },
        ],
        output="screen",
        emulate_tty=True,
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        arguments=["-d", LaunchConfiguration("rviz_config")],
        condition=IfCondition(LaunchConfiguration("rviz")),
        output="screen",
    )
    # Large images and clouds need a bigger shared-memory segment than Fast DDS's default.
    dds_profile = SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", PathJoinSubstitution([share, "config", "fastdds_shm.xml"]))
    return LaunchDescription([*arguments, dds_profile, node, rviz])
