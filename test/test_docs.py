"""The reference cannot drift: docs/node.md against the running node and the launch files, and
every command the README and docs name against its --help.

The node runs as its own process with no parameters given (so every value it reports is its
default), and its parameters, their types and its published topics are read over DDS the way
`ros2 param dump` and `ros2 node info` read them.
"""
from __future__ import annotations

import ast
import math
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from moe3d_ros.paths import executable

ROOT = Path(__file__).resolve().parents[1]
NODE_DOC = ROOT / "docs" / "node.md"
LAUNCH_FILES = ("moe3d.launch.py", "demo.launch.py")
ROW = re.compile(r"^\|(.+)\|\s*$")


def table_rows(markdown: str, header_start: str) -> list[list[str]]:
    """Cells of every row of the table whose header line starts with `header_start`."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        match = ROW.match(line)
        if not match:
            break
        rows.append([cell.strip() for cell in match.group(1).split(" | ")])
    return rows


def unquote(cell: str) -> str:
    return cell.strip().strip("`")


def documented_parameters() -> dict[str, tuple[str, object]]:
    """name -> (type word, default value) from the parameter table of docs/node.md."""
    rows = table_rows(NODE_DOC.read_text(), "| parameter | type | default |")
    return {unquote(name): (kind, yaml.safe_load(unquote(default))) for name, kind, default, *_ in rows}


def test_the_parameter_table_parses():
    documented = documented_parameters()
    assert len(documented) > 40
    assert documented["image_topics"] == ("string[]", ["/camera/image_raw"])
    assert documented["filter.max_depth"] == ("double", math.inf)


# ----------------------------------------------------------------------------- launch arguments


def declared_launch_arguments(path: Path) -> dict[str, str]:
    """name -> default of every DeclareLaunchArgument in a launch file, read from its source: a
    literal default as it is, a substitution as the path its string parts spell ('config/x.yaml')."""
    arguments = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DeclareLaunchArgument":
            name = node.args[0].value
            default = next(k.value for k in node.keywords if k.arg == "default_value")
            if isinstance(default, ast.Constant):
                arguments[name] = default.value
            else:
                parts = [c.value for c in ast.walk(default) if isinstance(c, ast.Constant) and isinstance(c.value, str)]
                arguments[name] = "/".join(parts)
    return arguments


@pytest.mark.parametrize("launch_file", LAUNCH_FILES)
def test_every_launch_argument_is_documented_and_every_documented_one_exists(launch_file):
    declared = declared_launch_arguments(ROOT / "launch" / launch_file)
    rows = table_rows(NODE_DOC.read_text(), "| launch file | argument | default |")
    documented = {unquote(arg): default for file, arg, default, *_ in rows if unquote(file) == launch_file}
    assert set(declared) == set(documented), f"{launch_file}: declared {sorted(declared)}, documented {sorted(documented)}"
    for name, default in declared.items():
        if "/" in default:  # a file in the package's share folder
            assert default in documented[name], f"{launch_file} {name}: default {default!r}, documented {documented[name]!r}"
        else:
            assert yaml.safe_load(unquote(documented[name]) or "''") == yaml.safe_load(default or "''"), (launch_file, name)


# ----------------------------------------------------------------------------- commands


def named_commands() -> list[str]:
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return sorted({name for path in texts for name in re.findall(r"\bmoe3d-[a-z]+\b", path.read_text())})


def test_every_command_the_docs_name_answers_help():
    commands = named_commands()
    assert {"moe3d-demo", "moe3d-infer", "moe3d-train", "moe3d-eval", "moe3d-export"} <= set(commands)
    runs = {name: subprocess.Popen([executable(name), "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for name in commands}
    for name, run in runs.items():
        output, _ = run.communicate(timeout=120)
        assert run.returncode == 0 and "usage:" in output, f"{name} --help exited {run.returncode}:\n{output[-2000:]}"


# ----------------------------------------------------------------------------- the running node


@pytest.fixture(scope="module")
def running_node(tmp_path_factory):
    from ros_harness import NodeProcess, domain_id, probe_node, spin_until

    domain = domain_id(11)
    proc = NodeProcess(domain, {}, tmp_path_factory.mktemp("logs"))
    with probe_node(domain, "docs_probe") as node:
        spin_until(node, lambda: "moe3d_node" in node.get_node_names(), 60, "the node on the graph", proc)
        yield node, proc
    proc.stop()


def call(node, proc, service_type, name: str, request):
    from ros_harness import spin_until

    client = node.create_client(service_type, name)
    spin_until(node, client.service_is_ready, 60, name, proc)
    future = client.call_async(request)
    spin_until(node, future.done, 30, f"the answer of {name}", proc)
    return future.result()


TYPE_WORDS = {1: "bool", 2: "integer", 3: "double", 4: "string", 7: "integer[]", 8: "double[]", 9: "string[]"}


@pytest.mark.e2e
def test_every_parameter_the_node_declares_is_documented_with_its_type_and_default(running_node):
    from rcl_interfaces.srv import DescribeParameters, GetParameters, ListParameters
    from rclpy.parameter import parameter_value_to_python

    from moe3d_ros.ros.settings import ALWAYS_ALLOWED

    node, proc = running_node
    names = call(node, proc, ListParameters, "/moe3d/moe3d_node/list_parameters", ListParameters.Request()).result.names
    names = [n for n in names if n not in ALWAYS_ALLOWED and not n.startswith("qos_overrides.")]
    values = call(node, proc, GetParameters, "/moe3d/moe3d_node/get_parameters", GetParameters.Request(names=names)).values
    descriptors = call(node, proc, DescribeParameters, "/moe3d/moe3d_node/describe_parameters",
                       DescribeParameters.Request(names=names)).descriptors
    documented = documented_parameters()
    missing = sorted(set(names) - set(documented))
    assert not missing, f"parameters the node declares that docs/node.md does not document: {missing}"
    unknown = sorted(set(documented) - set(names))
    assert not unknown, f"parameters docs/node.md documents that the node does not declare: {unknown}"
    for name, value, descriptor in zip(names, values, descriptors):
        kind, default = documented[name]
        assert kind == TYPE_WORDS[descriptor.type], f"{name}: the node says {TYPE_WORDS[descriptor.type]}, docs/node.md {kind}"
        actual = parameter_value_to_python(value)
        actual = list(actual) if isinstance(actual, (list, tuple)) or hasattr(actual, "tolist") else actual
        assert actual == default, f"{name}: the node's default is {actual!r}, docs/node.md says {default!r}"


@pytest.mark.e2e
def test_every_published_topic_is_documented_and_every_documented_one_is_published(running_node):
    from ros_harness import spin_until

    node, proc = running_node
    rows = table_rows(NODE_DOC.read_text(), "| topic (namespace `moe3d`) |")
    camera = "camera"  # the default image topic /camera/image_raw names its camera "camera"
    documented = {name if name.startswith("/") else f"/moe3d/{name.replace('<camera>', camera)}"
                  for name in (unquote(row[0]) for row in rows)}

    def published() -> set[str]:
        topics = node.get_publisher_names_and_types_by_node("moe3d_node", "/moe3d")
        return {topic for topic, _ in topics if topic not in ("/rosout", "/parameter_events")}

    spin_until(node, lambda: documented <= published(), 30, f"the documented topics {sorted(documented - published())}", proc)
    assert published() == documented, f"published but not documented: {sorted(published() - documented)}"
