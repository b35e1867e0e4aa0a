"""Load ``template.yaml`` with PyYAML, turning CloudFormation's short-form tags into their long form.

``!Ref X`` becomes ``{"Ref": "X"}``, ``!GetAtt A.B`` ``{"Fn::GetAtt": ["A", "B"]}``, any other ``!Name value``
``{"Fn::Name": value}`` (``!Sub``, ``!If``, ``!Equals``, ...), so the tests see what CloudFormation sees.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml


class CloudFormationLoader(yaml.SafeLoader):
    """A safe loader that understands ``!Ref``, ``!GetAtt``, ``!Sub`` and every other ``!Fn`` tag."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - PyYAML has no other node kinds
        raise yaml.constructor.ConstructorError(None, None, f"unexpected node for !{suffix}", node.start_mark)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path) -> dict[str, Any]:
    """Parse a CloudFormation/SAM template; raises if it is not a mapping."""
    with path.open(encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=CloudFormationLoader)  # a SafeLoader subclass
    if not isinstance(data, dict):
        raise TypeError(f"{path} is not a YAML mapping")
    return data


_SUB_VARIABLE = re.compile(r"\$\{([^!}][^}]*)\}")


def refs(value: object) -> set[str]:
    """Every name referenced with ``Ref``, ``GetAtt`` or a ``Sub`` variable (``${Name}``) inside ``value``."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt" and isinstance(inner, list) and inner:
                found.add(str(inner[0]))
            elif key == "Fn::Sub":
                text = inner if isinstance(inner, str) else inner[0] if isinstance(inner, list) and inner else ""
                found |= {name.split(".", 1)[0] for name in _SUB_VARIABLE.findall(str(text))}
            found |= refs(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= refs(inner)
    return found
