"""YAML text for the install files: plain objects plus a few markers, one emitter.

The objects of the install (install/objects.py) are plain dicts and lists that may hold
*markers* where the two outputs differ or where YAML alone is not enough:

- `Comment(text)` as a dict key (its value is ignored) or a list element: `# text` lines;
- `Tpl(text)` as a value or a list element: `text` written verbatim (a Helm expression such as
  `{{ $.Values.replicas }}`);
- `Block(expr)` as a value: the key, then `{{- toYaml expr | nindent N }}`;
- `Optional(expr)` as a value: the key only when `expr` is not empty (`{{- with expr }}`);
- `Lines(lines)` as a dict key or a list element: template lines at that indentation;
- `RuleList(rules)` as a value: RBAC rules, one flow-style rule each with its comment.

`dump` replaces every marker by a token, lets PyYAML write the rest, then puts the marker's
text where its token is. The kustomize objects only ever carry `Comment` and `RuleList`;
`plain` strips the markers for code that wants the objects themselves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

Obj = dict[str, Any]


class Marker:
    """Base of everything `dump` writes itself."""

    def lines(self, indent: str, key: str | None) -> list[str]:
        raise NotImplementedError


@dataclass(frozen=True)
class Comment(Marker):
    text: str

    def lines(self, indent: str, key: str | None) -> list[str]:
        return [f"{indent}# {line}".rstrip() for line in self.text.splitlines()]


@dataclass(frozen=True)
class Tpl(Marker):
    text: str

    def lines(self, indent: str, key: str | None) -> list[str]:
        return [f"{indent}{key}: {self.text}"]


@dataclass(frozen=True)
class Block(Marker):
    expr: str

    def lines(self, indent: str, key: str | None) -> list[str]:
        width = len(indent) + 2
        return [f"{indent}{key}:", f"{indent}  {{{{- toYaml {self.expr} | nindent {width} }}}}"]


@dataclass(frozen=True)
class Optional(Marker):
    expr: str
    scalar: bool = False

    def lines(self, indent: str, key: str | None) -> list[str]:
        if self.scalar:
            body = [f"{indent}{key}: {{{{ . | quote }}}}"]
        else:
            width = len(indent) + 2
            body = [f"{indent}{key}:", f"{indent}  {{{{- toYaml . | nindent {width} }}}}"]
        return [f"{indent}{{{{- with {self.expr} }}}}", *body, f"{indent}{{{{- end }}}}"]


@dataclass(frozen=True)
class Lines(Marker):
    text: tuple[str, ...]

    def lines(self, indent: str, key: str | None) -> list[str]:
        return [f"{indent}{line}".replace("{indent}", str(len(indent))) for line in self.text]


@dataclass(frozen=True)
class Rule:
    """One RBAC rule; `why` is written above it."""

    why: str | None
    groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    names: tuple[str, ...] = ()

    def as_dict(self) -> Obj:
        rule: Obj = {"apiGroups": list(self.groups), "resources": list(self.resources)}
        if self.names:
            rule["resourceNames"] = list(self.names)
        rule["verbs"] = list(self.verbs)
        return rule


@dataclass(frozen=True)
class RuleList(Marker):
    rules: tuple[Rule, ...]

    def lines(self, indent: str, key: str | None) -> list[str]:
        out = [f"{indent}{key}:"]
        for rule in self.rules:
            if rule.why:
                out += Comment(rule.why).lines(indent + "  ", None)
            fields = [f"{name}: {_flow(value)}" for name, value in rule.as_dict().items()]
            out.append(f"{indent}  - {fields[0]}")
            out += [f"{indent}    {f}" for f in fields[1:]]
        return out


def _flow(value: list[str]) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().replace("''", '""')


# -- dumping -----------------------------------------------------------------------------------


@dataclass
class _Tokens:
    markers: dict[str, Marker] = field(default_factory=dict)

    def token(self, marker: Marker) -> str:
        name = f"__marker_{len(self.markers):04d}__"
        self.markers[name] = marker
        return name

    def replace(self, value: Any) -> Any:
        if isinstance(value, Marker):
            return self.token(value)
        if isinstance(value, dict):
            return {
                (self.token(k) if isinstance(k, Marker) else k): self.replace(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.replace(v) for v in value]
        return value


class _Dumper(yaml.SafeDumper):
    """Block style with list items indented under their key, as kubectl users write them."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data.strip("\n") or data.endswith("\n") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


_TOKEN_LINE = re.compile(
    r"^(?P<indent>\s*)(?P<item>- )?(?:(?P<key>[^\s:][^:]*): )?(?P<token>__marker_\d{4}__)"
    r"(?:: null)?$"
)


def dump(obj: Obj) -> str:
    """One object as YAML text (block style, keys in the order given), markers written out."""
    tokens = _Tokens()
    text = yaml.dump(tokens.replace(obj), Dumper=_Dumper, sort_keys=False,
                     default_flow_style=False, width=10_000, allow_unicode=True)
    out: list[str] = []
    for line in text.splitlines():
        match = _TOKEN_LINE.match(line)
        if match is None:
            if "__marker_" in line:
                raise ValueError(f"marker in an unsupported position: {line!r}")
            out.append(line)
            continue
        marker = tokens.markers[match["token"]]
        indent = match["indent"]
        if match["item"]:
            if isinstance(marker, Comment | Lines):  # a list element
                out += marker.lines(indent, None)
                continue
            if isinstance(marker, Tpl):
                out.append(f"{indent}- {marker.text}")
                continue
            raise ValueError(f"{type(marker).__name__} cannot start a list item: {line!r}")
        out += marker.lines(indent, match["key"])
    return "\n".join(out) + "\n"


def dump_all(objects: Iterable[Obj]) -> str:
    return "---\n".join(dump(obj) for obj in objects)


def plain(value: Any) -> Any:
    """`value` without comments (markers of other kinds are not allowed here)."""
    if isinstance(value, RuleList):
        return [rule.as_dict() for rule in value.rules]
    if isinstance(value, Marker):
        raise ValueError(f"{value!r} has no plain value")
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if not isinstance(k, Comment)}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value if not isinstance(v, Comment)]
    return value


def header(lines: Sequence[str]) -> str:
    return "".join(f"# {line}".rstrip() + "\n" for line in lines)
