"""Load YAML keeping each value's line, and turn validation errors into ``file:line field: msg``.

The YAML files are the product's language for CS operations, so every error points at the
line a person has to change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from healthscore.core.errors import ConfigError

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class YamlDocument:
    """Parsed data plus the 1-based line of every mapping key / sequence item."""

    path: str
    data: Any
    lines: dict[Loc, int]

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """The line of ``loc`` or of its nearest ancestor that has one."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), None)


def parse_yaml(text: str, path: str) -> YamlDocument:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        # point at where the broken construct starts (an unclosed bracket), not where the
        # parser noticed; name the detection line too when it differs
        start = getattr(exc, "context_mark", None)
        found = getattr(exc, "problem_mark", None)
        mark = start or found
        where = f"{path}:{mark.line + 1}" if mark else path
        problem = getattr(exc, "problem", None) or str(exc)
        if start and found and found.line != start.line:
            problem += f" (noticed at line {found.line + 1})"
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    lines: dict[Loc, int] = {}
    data = _walk(root, (), lines, path) if root is not None else {}
    return YamlDocument(path=path, data=data, lines=lines)


def load_yaml(path: str | Path) -> YamlDocument:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{p}: configuration file not found (set HEALTHSCORE_CONFIG or "
            f"copy healthscore.example.yaml)"
        ) from None
    return parse_yaml(text, str(p))


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int], path: str) -> Any:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.SafeLoader(" ").construct_object(key_node)  # scalars only
            if key in out:
                raise ConfigError(
                    f"{path}:{key_node.start_mark.line + 1} {_dotted((*loc, key))}: duplicate key"
                )
            lines[(*loc, key)] = key_node.start_mark.line + 1
            out[key] = _walk(value_node, (*loc, key), lines, path)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, (*loc, i), lines, path) for i, item in enumerate(node.value)]
    return yaml.SafeLoader(" ").construct_object(node)


def _dotted(loc: Sequence[str | int]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def validate(doc: YamlDocument, model: type[M], *, root: Loc = (), context: Any = None) -> M:
    """Validate ``doc.data[root]`` against ``model``; errors become ``file:line field: msg``."""
    data: Any = doc.data
    for part in root:
        data = data.get(part) if isinstance(data, dict) else None
    try:
        return model.model_validate(data if data is not None else {}, context=context)
    except ValidationError as exc:
        raise ConfigError(format_errors(doc, exc, root)) from None


def format_errors(doc: YamlDocument, exc: ValidationError, root: Loc = ()) -> str:
    messages = []
    for err in exc.errors(include_url=False):
        loc = (*root, *[p for p in err["loc"] if not _is_internal(p)])
        line = doc.line_of(loc)
        where = f"{doc.path}:{line}" if line else doc.path
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling)"
        messages.append(f"{where} {_dotted(loc)}: {msg}")
    return "\n".join(messages)


def _is_internal(part: Any) -> bool:
    """pydantic puts union-member and validator names in ``loc``; they mean nothing to users."""
    return isinstance(part, str) and (
        part.startswith(("function-", "tagged-union")) or part in {"str", "int", "float", "bool"}
    )
