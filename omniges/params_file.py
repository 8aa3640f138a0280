"""Edit dotted keys of a YAML file in place, comments and layout kept: block and flow (inline) mappings and lists."""

from __future__ import annotations

import io
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError


class KeyNotFound(KeyError):
    """A dotted key whose parent does not exist in the file; the message is the key and what is missing."""

    def __str__(self) -> str:
        return str(self.args[0])


def round_trip() -> YAML:
    """ruamel's round-trip loader/dumper, set up so that an unedited file is written back byte for byte."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap long flow mappings
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    return yaml


def parse_value(text: str) -> Any:
    """A command-line value as YAML (`[2]` a flow list, `{a: 1}` a flow mapping, `` an empty string)."""
    if text == "":
        return ""
    try:
        return round_trip().load(text)
    except YAMLError as error:
        raise ValueError(f"{text!r} is not a YAML value ({str(error).splitlines()[0]})") from None


def set_keys(text: str, assignments: dict[str, str]) -> str:
    """`text` with each dotted key set to its value (parsed as YAML); list items are addressed by index (`a.0`).

    Every parent must exist; a new leaf is added only inside a mapping (validation decides if it is allowed).
    """
    yaml = round_trip()
    try:
        tree = yaml.load(text)
    except YAMLError as error:
        raise ValueError(f"not valid YAML ({str(error).splitlines()[0]})") from None
    for key, value in assignments.items():
        *parents, leaf = key.split(".")
        node = tree
        for i, part in enumerate(parents):
            node = _child(node, part, key, ".".join(parents[: i + 1]))
        if isinstance(node, list):
            node[_index(node, leaf, key)] = parse_value(value)
        elif isinstance(node, dict):
            node[leaf] = parse_value(value)
        else:
            raise KeyNotFound(f"{key}: {'.'.join(parents)} is a value, not a section")
    out = io.StringIO()
    yaml.dump(tree, out)
    return out.getvalue()


def _child(node: Any, part: str, key: str, where: str) -> Any:
    if isinstance(node, dict) and part in node:
        return node[part]
    if isinstance(node, list):
        return node[_index(node, part, key)]
    raise KeyNotFound(f"{key}: not found in params file (no {where})")


def _index(items: list, part: str, key: str) -> int:
    if not part.lstrip("-").isdigit() or not -len(items) <= int(part) < len(items):
        raise KeyNotFound(f"{key}: {part!r} is not an index of a list of {len(items)}")
    return int(part)
