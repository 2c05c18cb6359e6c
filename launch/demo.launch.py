"""The demo for ROS users: a synthetic camera -> moe3d_node (bundled demo model) -> rviz2.

    ros2 launch moe3d_ros demo.launch.py            # rviz:=false to skip the viewer
    ros2 launch moe3d_ros demo.launch.py params_file:=my_demo.yaml   # your node parameters
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("moe3d_ros")
    camera = Node(
        package="moe3d_ros",
        executable="moe3d_demo_camera",
        name="demo_camera",
        namespace="demo_camera",
        parameters=[{"rate": LaunchConfiguration("rate")}],
        output="screen",
    )
    moe3d = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([share, "launch", "moe3d.launch.py"])),
        launch_arguments={
            "image_topics": "['/demo_camera/image_raw']",
            "params_file": LaunchConfiguration("params_file"),
            "checkpoint": LaunchConfiguration("checkpoint"),
            "rviz": LaunchConfiguration("rviz"),
            "rviz_config": PathJoinSubstitution([share, "config", "demo.rviz"]),
        }.items(),
    )
    return LaunchDescription([
        DeclareLaunchArgument("rate", default_value="5.0", description="demo camera frame rate [Hz]"),
        DeclareLaunchArgument("checkpoint", default_value="", description="empty = bundled synthetic demo model"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "demo.yaml"]),
                              description="YAML file with moe3d_node parameters for the demo"),
        DeclareLaunchArgument("rviz", default_value="true", description="start rviz2"),
        camera,
        moe3d,
    ])
