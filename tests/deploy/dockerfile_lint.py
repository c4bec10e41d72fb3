"""A small Dockerfile reader and the checks tests/deploy/test_dockerfiles.py applies.

Not a full BuildKit parser: enough of the syntax the images use (line continuations,
comments, global ARG defaults, stages, exec-form ENTRYPOINT/CMD, COPY flags) to check what
matters: COPY sources exist and survive .dockerignore, entry points are installed console
scripts, the final stage runs as a numeric non-root user and carries no compiler, and no pip
or venv command runs through a virtualenv that PATH already points at.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

COMPILER_PACKAGES = re.compile(
    r"^(build-essential|gcc(-\d+)?|g\+\+(-\d+)?|cpp|cc|clang(-\d+)?|llvm(-\d+)?|make|cmake|"
    r"binutils|libc6?-dev|musl-dev|python3?(\.\d+)?-dev|rustc|cargo|golang(-go)?|gfortran|"
    r"autoconf|automake|libtool|pkg-config|pkgconf)$"
)
INSTALL_COMMAND = re.compile(
    r"\b(apt-get|apt|apk|dnf|yum|microdnf)\s+(?:[^;&|]*?\s)?(install|add)\s+([^;&|]*)"
)
COPY_FLAGS = ("--chown", "--chmod", "--link", "--parents", "--exclude", "--from", "--checksum")
# A command word (start of the RUN or after a shell operator) that runs pip or makes a venv
# through whatever `python`/`pip` PATH finds first.
BARE_PIP = re.compile(
    r"(?:^|&&|\|\||[;|(]|\bthen\b|\bdo\b|\belse\b)\s*(?:exec\s+)?"
    r"((?:pip[0-9.]*)|(?:python[0-9.]*\s+-m\s+(?:pip|venv)))(?=\s|$)"
)
VENV_CREATE = re.compile(r"-m\s+venv\s+(?:-\S+\s+)*([^\s;&|]+)")
REQUIRED_LABELS = ("org.opencontainers.image.version", "org.opencontainers.image.source")


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    index: int
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    path: Path
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]


def parse(path: Path, text: str | None = None) -> Dockerfile:
    text = path.read_text() if text is None else text
    logical: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not buffer):
            continue  # comments are dropped even inside a continuation, as Docker does
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        buffer += stripped
        logical.append((start, buffer.strip()))
        buffer = ""
    if buffer:
        logical.append((start, buffer.strip()))

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(Stage(base=words[0], name=name, index=len(stages)))
        elif not stages:
            if keyword == "ARG":
                key, _, default = args.partition("=")
                global_args[key.strip()] = default.strip().strip('"')
        else:
            stages[-1].instructions.append(Instruction(keyword, args, number))
    return Dockerfile(path, global_args, stages)


def expand(value: str, variables: dict[str, str]) -> str:
    return re.sub(
        r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: variables.get(m.group(1), m.group(0)), value
    )


def exec_form(args: str) -> list[str] | None:
    try:
        value = json.loads(args)
    except ValueError:
        return None
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def env_pairs(args: str) -> dict[str, str]:
    """The variables one ENV sets (`ENV A=1 B="x y"` or the legacy `ENV KEY value`)."""
    words = shlex.split(args)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return {key: value for key, _, value in (w.partition("=") for w in words)}


def venv_shadowing(stage: Stage) -> list[tuple[int, str, str]]:
    """(line, command, venv) of each RUN that calls a bare pip (or `python -m pip|venv`) while
    PATH starts with a virtualenv's bin/: PATH lookup, and Python's own prefix search from
    argv[0], then run the venv's interpreter, which has no pip when it was made --without-pip
    ("/opt/venv/bin/python: No module named pip")."""
    venvs = {
        m.group(1).rstrip("/") for i in stage.all("RUN") for m in VENV_CREATE.finditer(i.args)
    }
    venvs |= {
        env_pairs(i.args)["VIRTUAL_ENV"].rstrip("/")
        for i in stage.all("ENV") if "VIRTUAL_ENV" in env_pairs(i.args)
    }
    env: dict[str, str] = {}
    shadow: str | None = None
    found: list[tuple[int, str, str]] = []
    for instr in stage.instructions:
        if instr.keyword == "ENV":
            pairs = env_pairs(instr.args)
            if "PATH" in pairs:
                entries = expand(pairs["PATH"], {**env, **pairs, "PATH": ""}).split(":")
                shadow = next(
                    (v for v in venvs for e in entries if e.rstrip("/") == f"{v}/bin"), None
                )
            env.update(pairs)
        elif instr.keyword == "RUN" and shadow is not None:
            command = re.sub(r"^(?:--\S+\s+)*", "", instr.args)
            found += [(instr.line, m.group(1), shadow) for m in BARE_PIP.finditer(command)]
    return found


def copy_parts(args: str) -> tuple[dict[str, str], list[str], str]:
    """(flags, sources, destination) of a COPY/ADD, shell or exec form."""
    words = exec_form(args)
    flags: dict[str, str] = {}
    if words is None:
        words = shlex.split(args)
        while words and words[0].startswith("--"):
            key, _, value = words.pop(0).partition("=")
            flags[key] = value
    return flags, words[:-1], words[-1] if words else ""


# -- .dockerignore -----------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


@dataclass(frozen=True)
class DockerIgnore:
    rules: tuple[tuple[bool, re.Pattern[str]], ...]  # (is_exception, regex)

    @classmethod
    def load(cls, path: Path) -> DockerIgnore:
        rules: list[tuple[bool, re.Pattern[str]]] = []
        if path.exists():
            for raw in path.read_text().splitlines():
                line = raw.strip()
                if not line or line.startswith("#"):
                    continue
                negated = line.startswith("!")
                cleaned = line.lstrip("!").strip().strip("/")
                rules.append((negated, _pattern_regex(cleaned)))
        return cls(tuple(rules))

    def excluded(self, relative: str) -> bool:
        """Docker semantics: the last matching rule wins; a rule matching a parent counts."""
        parts = relative.strip("/").split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        result = False
        for negated, regex in self.rules:
            if any(regex.fullmatch(p) for p in prefixes):
                result = not negated
        return result


def sent_files(root: Path, source: str, ignore: DockerIgnore) -> list[str]:
    """Files under `source` (a path or glob in the context) that reach the build."""
    found: list[str] = []
    for match in sorted(root.glob(source.strip("/") or ".")):
        candidates = [match] if match.is_file() else [p for p in match.rglob("*") if p.is_file()]
        for candidate in candidates:
            relative = candidate.relative_to(root).as_posix()
            if not ignore.excluded(relative):
                found.append(relative)
    return found


# -- checks --------------------------------------------------------------------------------------


def _entry_function_exists(root: Path, package_dirs: list[str], target: str) -> str | None:
    module, _, function = target.partition(":")
    for base in package_dirs:
        file = root / base / Path(*module.split(".")).with_suffix(".py")
        if file.exists():
            tree = ast.parse(file.read_text())
            names = {
                n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            }
            names |= {
                a.asname or a.name
                for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names
            }
            if function.split(".")[0] in names:
                return f"{base}/{module.split('.')[0]}"
            return None
    return None


def problems(
    dockerfile: Dockerfile,
    *,
    root: Path,
    scripts: dict[str, str],
    package_dirs: list[str],
    version: str,
) -> list[str]:
    """Everything wrong with one Dockerfile, as one-line messages (empty when fine)."""
    found: list[str] = []
    name = dockerfile.path.name
    ignore = DockerIgnore.load(root / ".dockerignore")
    stages = dockerfile.stages
    if len(stages) < 2:
        found.append(f"{name}: not multi-stage (build in a builder stage, copy the result)")
    if not stages:
        return found
    stage_names = {s.name for s in stages if s.name} | {str(s.index) for s in stages}

    copied: list[str] = []
    for stage in stages:
        base = expand(stage.base, dockerfile.global_args)
        if base not in stage_names:
            tagged = "@sha256:" in base or re.search(r":[^/]*\d[^/]*$", base)
            if not tagged or base.endswith(":latest"):
                found.append(f"{name}: base image {base!r} is not pinned to an exact tag/digest")
        for instr in stage.all("COPY") + stage.all("ADD"):
            flags, sources, _ = copy_parts(instr.args)
            if "--from" in flags:
                source_stage = expand(flags["--from"], dockerfile.global_args)
                if source_stage not in stage_names and ":" not in source_stage:
                    found.append(f"{name}:{instr.line}: COPY --from={source_stage}: no such stage")
                continue
            for source in sources:
                if not list(root.glob(source.strip("/") or ".")):
                    found.append(f"{name}:{instr.line}: COPY source {source!r} does not exist")
                elif not sent_files(root, source, ignore):
                    found.append(
                        f"{name}:{instr.line}: COPY source {source!r} is excluded by .dockerignore"
                    )
                else:
                    copied.append(source.strip("/"))

    for stage in stages:
        for line, command, venv in venv_shadowing(stage):
            found.append(
                f"{name}:{line}: `{command}` runs while {venv}/bin is on PATH, so it resolves "
                f"into the venv (no pip there): call the base interpreter by absolute path or "
                f"set PATH after this step"
            )

    final = dockerfile.final
    users = final.all("USER")
    if not users:
        found.append(f"{name}: the final stage has no USER (it would run as root)")
    else:
        user = users[-1].args.split(":")[0].strip()
        if not user.isdigit():
            found.append(f"{name}: final USER {user!r} must be a numeric UID (runAsNonRoot)")
        elif int(user) == 0:
            found.append(f"{name}: the final stage runs as root (USER 0)")

    for instr in final.all("RUN"):
        for match in INSTALL_COMMAND.finditer(instr.args):
            packages = [w for w in match.group(3).split() if not w.startswith("-")]
            compilers = [p for p in packages if COMPILER_PACKAGES.match(p.split("=")[0])]
            if compilers:
                found.append(f"{name}:{instr.line}: compiler in the final stage: {compilers}")
    parent = next((s for s in stages[:-1] if s.name == final.base), None)
    if parent is not None and problems_in_installs(parent):
        found.append(f"{name}: the final stage is built FROM {parent.name}, which has compilers")

    entry = final.all("ENTRYPOINT") or final.all("CMD")
    if not entry:
        found.append(f"{name}: no ENTRYPOINT/CMD in the final stage")
    else:
        argv = exec_form(entry[-1].args)
        if not argv:
            found.append(f"{name}: ENTRYPOINT must use the exec form [\"console-script\", ...]")
        elif argv[0] not in scripts:
            found.append(
                f"{name}: ENTRYPOINT {argv[0]!r} is not a console script in pyproject "
                f"[project.scripts] ({', '.join(sorted(scripts))})"
            )
        else:
            package_dir = _entry_function_exists(root, package_dirs, scripts[argv[0]])
            if package_dir is None:
                found.append(f"{name}: {argv[0]} -> {scripts[argv[0]]} does not exist in the repo")
            elif not any(package_dir == c or package_dir.startswith(c + "/") for c in copied):
                found.append(f"{name}: {argv[0]} needs {package_dir}/, which is never COPYed")

    labels = " ".join(i.args for i in final.all("LABEL"))
    for label in REQUIRED_LABELS:
        if label not in labels:
            found.append(f"{name}: final stage lacks the label {label}")
    version_args = [
        i.args.partition("=")[2].strip('"')
        for i in final.all("ARG")
        if i.args.startswith("VERSION=")
    ]
    if version_args and version_args[-1] != version:
        found.append(f"{name}: ARG VERSION={version_args[-1]} but pyproject says {version}")
    return found


def problems_in_installs(stage: Stage) -> bool:
    return any(
        COMPILER_PACKAGES.match(p.split("=")[0])
        for instr in stage.all("RUN")
        for m in INSTALL_COMMAND.finditer(instr.args)
        for p in m.group(3).split()
    )
