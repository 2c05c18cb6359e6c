from glob import glob

from setuptools import find_packages, setup

PACKAGE = "moe3d_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    # The bundled demo models (safetensors + JSON) install with the code: see docs/demo-model.md.
    package_data={PACKAGE: ["models/*/*.json", "models/*/*.safetensors"]},
    python_requires=">=3.10,<3.13",
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz") + glob("config/*.xml")),
    ],
    install_requires=["setuptools"],
    extras_require={"test": ["pytest"], "onnx": ["onnx", "onnxruntime", "onnxscript"]},
    zip_safe=False,
    maintainer="moe3d_ros maintainers",
    maintainer_email="moe3d-ros@users.noreply.github.com",
    description="VGGT with a mixture-of-experts depth head for ROS 2",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "moe3d-infer = moe3d_ros.cli.infer:main",
            "moe3d-train = moe3d_ros.cli.train:main",
            "moe3d-eval = moe3d_ros.cli.eval:main",
            "moe3d-demo = moe3d_ros.cli.demo:main",
            "moe3d-export = moe3d_ros.cli.export:main",
            "moe3d_node = moe3d_ros.ros.node:main",
            "moe3d_lifecycle_node = moe3d_ros.ros.lifecycle_node:main",
            "moe3d_demo_camera = moe3d_ros.ros.demo_camera:main",
        ],
    },
)
