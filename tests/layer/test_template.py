"""template.yaml: what cfn-lint cannot see (runtime names, paths, build targets, least privilege), then cfn-lint
and ``sam validate --lint`` themselves, offline."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from serverless_mysql.env import env_vars
from tests.layer.cfn import load_template, refs
from tests.layer.samcli import SamTools

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

# Lambda's Python runtimes that are supported and not deprecated (cfn-lint 1.58's lifecycle data: python3.10 was
# deprecated on 2026-10-31, python3.11 follows in 2027). cfn-lint does not reject an unknown name such as
# "python3.99" in CompatibleRuntimes, hence this list.
SUPPORTED_RUNTIMES = frozenset({"python3.12", "python3.13", "python3.14"})
ARCHITECTURES = frozenset({"x86_64", "arm64"})
FUNCTIONS = ("ExampleFunction", "OrmExampleFunction")  # the plain client and the same API through the ORM


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == kind}


def _makefile_targets(directory: Path) -> set[str]:
    text = (directory / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z0-9_.-]+):", text, flags=re.MULTILINE))


def test_is_a_sam_template(template: dict[str, Any]) -> None:
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    assert template["AWSTemplateFormatVersion"] == "2010-09-09"


def test_layers_runtimes_architectures_and_retention(template: dict[str, Any]) -> None:
    layers = _resources(template, "AWS::Serverless::LayerVersion")
    assert set(layers) == {"ServerlessMySQLLayer", "ShutdownExtensionLayer"}
    for name, layer in layers.items():
        props = layer["Properties"]
        runtimes = props["CompatibleRuntimes"]
        assert set(runtimes) <= SUPPORTED_RUNTIMES, f"{name}: unknown or deprecated runtime in {runtimes}"
        assert {"python3.12", "python3.13"} <= set(runtimes), name
        assert len(runtimes) == len(set(runtimes)), name
        # Both layers are architecture-independent (pure Python / a script), so both architectures are listed.
        assert set(props["CompatibleArchitectures"]) == ARCHITECTURES, name
        assert props["RetentionPolicy"] in ("Retain", "Delete"), name
        assert props["LicenseInfo"] == "MIT", name
    assert "Condition" in layers["ShutdownExtensionLayer"], "the shutdown extension must stay opt-in"
    assert "Condition" not in layers["ServerlessMySQLLayer"]


def test_every_makefile_build_has_its_target(template: dict[str, Any]) -> None:
    built = 0
    for name, res in template["Resources"].items():
        if res.get("Metadata", {}).get("BuildMethod") != "makefile":
            continue
        props = res["Properties"]
        directory = ROOT / (props.get("ContentUri") or props["CodeUri"])
        assert directory.is_dir(), f"{name}: {directory} does not exist"
        assert f"build-{name}" in _makefile_targets(directory), f"{directory}/Makefile has no target build-{name}"
        built += 1
    assert built == 4


def test_every_referenced_path_exists(template: dict[str, Any]) -> None:
    for name, res in template["Resources"].items():
        props = res.get("Properties", {})
        for key in ("ContentUri", "CodeUri"):
            if key in props:
                assert isinstance(props[key], str), f"{name}.{key} must be a local path for sam build"
                assert (ROOT / props[key]).is_dir(), f"{name}.{key}: {props[key]} does not exist"
    # The files the layer Makefile copies or reads.
    for rel in (
        "layer/tools.py",
        "layer/requirements.txt",
        "layer/requirements-powertools.txt",
        "layer/requirements-rsa.txt",
        "layer/extension/serverless-mysql-shutdown",
        "layer/extension/extension.py",
        "examples/handler.py",
        "examples/schema.sql",
        "examples/orm/handler.py",
        "examples/orm/requirements.txt",
        "pyproject.toml",
        "README.md",
    ):
        assert (ROOT / rel).is_file(), rel


@pytest.mark.parametrize("function", FUNCTIONS)
def test_function_handler_runtime_and_layers(template: dict[str, Any], function: str) -> None:
    functions = _resources(template, "AWS::Serverless::Function")
    assert set(functions) == set(FUNCTIONS)
    props = functions[function]["Properties"]
    module, _, attr = props["Handler"].rpartition(".")
    source = ROOT / props["CodeUri"] / f"{module}.py"
    assert source.is_file(), source
    defined = {n.name for n in ast.parse(source.read_text(encoding="utf-8")).body if isinstance(n, ast.FunctionDef)}
    assert attr in defined, f"{source} defines no function {attr!r}"
    assert props["Runtime"] in SUPPORTED_RUNTIMES
    layers = _resources(template, "AWS::Serverless::LayerVersion")
    for layer in layers.values():
        assert props["Runtime"] in layer["Properties"]["CompatibleRuntimes"]
    arch_param = template["Parameters"]["Architecture"]
    assert set(arch_param["AllowedValues"]) == ARCHITECTURES
    assert props["Architectures"] == [{"Ref": "Architecture"}]
    layer_refs = refs(props["Layers"])
    assert {"ServerlessMySQLLayer", "ShutdownExtensionLayer"} <= layer_refs
    # The Powertools layer of the function's runtime and architecture (from AWS's public SSM parameter).
    powertools = props["Layers"][1]["Fn::If"][2]["Fn::Sub"]
    assert f"/{props['Runtime']}/" in powertools
    assert "${Architecture}" in powertools
    assert set(props["VpcConfig"]) == {"SubnetIds", "SecurityGroupIds"}


def test_powertools_version_matches_the_pinned_one(template: dict[str, Any]) -> None:
    pinned = (ROOT / "layer" / "requirements-powertools.txt").read_text(encoding="utf-8")
    version = re.search(r"^aws-lambda-powertools==(\S+)$", pinned, flags=re.MULTILINE)
    assert version is not None
    assert template["Parameters"]["PowertoolsVersion"]["Default"] == version.group(1)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_environment_variables_name_real_options(template: dict[str, Any], function: str) -> None:
    variables = template["Resources"][function]["Properties"]["Environment"]["Variables"]
    known = {var.name for var in env_vars()}
    ours = {name for name in variables if name.startswith("SERVERLESS_MYSQL_")}
    assert ours, "the example function is configured through SERVERLESS_MYSQL_* variables"
    assert ours <= known, f"unknown variables: {sorted(ours - known)}"
    assert variables["SERVERLESS_MYSQL_SECRET_ID"] == {"Ref": "DatabaseSecretArn"}
    assert not any("PASSWORD" in name for name in variables), "credentials come from the secret, not the template"


def _statements(policies: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for policy in policies:
        if "Fn::If" in policy:
            _, when_true, _ = policy["Fn::If"]
            out.extend(_statements([when_true]))
        else:
            out.extend(policy["Statement"])
    return out


@pytest.mark.parametrize("function", FUNCTIONS)
def test_least_privilege(template: dict[str, Any], function: str) -> None:
    props = template["Resources"][function]["Properties"]
    statements = _statements(props["Policies"])
    by_action = {stmt["Action"]: stmt for stmt in statements}
    assert set(by_action) == {"secretsmanager:GetSecretValue", "kms:Decrypt"}
    for stmt in statements:
        assert stmt["Effect"] == "Allow"
        assert "*" not in str(stmt["Action"]) and "*" not in str(stmt["Resource"]), stmt
    assert by_action["secretsmanager:GetSecretValue"]["Resource"] == {"Ref": "DatabaseSecretArn"}
    kms = by_action["kms:Decrypt"]
    assert kms["Resource"] == {"Ref": "SecretKmsKeyArn"}
    assert "kms:ViaService" in kms["Condition"]["StringEquals"]
    assert template["Conditions"]["HasKmsKey"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "SecretKmsKeyArn"}, ""]}]}


def test_the_orm_function_ships_sqlalchemy_for_both_architectures(template: dict[str, Any]) -> None:
    """SQLAlchemy is not in the layer: the ORM function's own build installs it, as pure-Python wheels."""
    props = template["Resources"]["OrmExampleFunction"]["Properties"]
    directory = ROOT / props["CodeUri"]
    pinned = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (directory / "requirements.txt").read_text(), re.MULTILINE)
    assert [name.lower() for name, _ in pinned] == ["sqlalchemy"], "serverless-mysql and PyMySQL come from the layer"
    major = int(pinned[0][1].split(".")[0])
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    extra = re.search(r'^sqlalchemy = \["SQLAlchemy>=(\d+)[^<]*<(\d+)"\]$', pyproject, re.MULTILINE)
    assert extra is not None, "pyproject.toml has the 'sqlalchemy' extra"
    assert int(extra.group(1)) <= major < int(extra.group(2)), "the function ships a version the extra allows"
    recipe = (directory / "Makefile").read_text(encoding="utf-8")
    # Pure-Python wheels only: SAM gives a makefile build no architecture, and the function serves both.
    for flag in ("--platform any", "--abi none", "--implementation py", "--only-binary=:all:", "requirements.txt"):
        assert flag in recipe, flag
    assert props["Runtime"] == "python3.12" and "PYTHON_VERSION ?= 3.12" in recipe
    assert props["Architectures"] == [{"Ref": "Architecture"}]
    source = (directory / "handler.py").read_text(encoding="utf-8")
    assert "from serverless_mysql.sqlalchemy import create_engine" in source
    layer = (ROOT / "layer" / "requirements.txt").read_text(encoding="utf-8").lower().splitlines()
    assert not [line for line in layer if "sqlalchemy" in line and not line.startswith("#")], "not in the layer"


def test_outputs_export_the_layer_arn(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert outputs["LayerArn"]["Value"] == {"Ref": "ServerlessMySQLLayer"}
    assert outputs["ShutdownExtensionLayerArn"]["Value"] == {"Ref": "ShutdownExtensionLayer"}
    assert outputs["ShutdownExtensionLayerArn"]["Condition"] == "UseShutdownExtension"


def test_every_ref_is_defined(template: dict[str, Any]) -> None:
    defined = set(template["Parameters"]) | set(template["Resources"])
    # SAM generates <Function>Role; pseudo parameters start with AWS::.
    defined |= {f"{name}Role" for name in _resources(template, "AWS::Serverless::Function")}
    used = {name for name in refs(template) if not name.startswith("AWS::")}
    assert used <= defined, sorted(used - defined)
    unused = set(template["Parameters"]) - used
    assert not unused, f"parameters nobody uses: {sorted(unused)}"


@pytest.mark.slow
def test_cfn_lint(sam_tools: SamTools) -> None:
    done = subprocess.run(
        [str(sam_tools.cfn_lint), str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=sam_tools.env(),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_sam_validate_lint(sam_tools: SamTools) -> None:
    done = subprocess.run(
        [str(sam_tools.sam), "validate", "--lint", "--template-file", str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=sam_tools.env(),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is a valid SAM Template" in done.stdout + done.stderr


@pytest.mark.slow
def test_cfn_lint_rejects_a_broken_template(sam_tools: SamTools, tmp_path: Path) -> None:
    # Proves the lint really runs: an unknown property must fail it.
    broken = TEMPLATE.read_text(encoding="utf-8").replace("MemorySize: 256", "MemorySize: 256\n      NoSuchProperty: 1")
    assert broken != TEMPLATE.read_text(encoding="utf-8")
    path = tmp_path / "template.yaml"
    path.write_text(broken, encoding="utf-8")
    done = subprocess.run(
        [str(sam_tools.cfn_lint), str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=sam_tools.env(),
        check=False,
    )
    assert done.returncode != 0
    assert "NoSuchProperty" in done.stdout + done.stderr
