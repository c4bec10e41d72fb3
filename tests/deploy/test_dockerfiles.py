"""Static checks of the Dockerfiles in images/ (no Docker engine needed): a Dockerfile that
refers to a missing file, installs an entry point the package does not have, runs as root or
ships a compiler fails here."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest

from tests.deploy import dockerfile_lint as lint
from tests.deploy.support import (
    CRDS,
    IMAGES,
    ROOT,
    console_scripts,
    load_documents,
    pyproject,
    the_one,
)

COMPONENTS = {"server": "thumbnail-api", "worker": "thumbnail-worker",
              "operator": "thumbnail-operator"}


def _dockerfiles() -> list[Path]:
    return sorted(IMAGES.glob("*/Dockerfile"))


def _problems(path: Path, text: str | None = None) -> list[str]:
    project = pyproject()
    return lint.problems(
        lint.parse(path, text),
        root=ROOT,
        scripts=console_scripts(),
        package_dirs=project["tool"]["setuptools"]["packages"]["find"]["where"],
        version=project["project"]["version"],
    )


def test_one_dockerfile_per_component() -> None:
    assert {p.parent.name for p in _dockerfiles()} == set(COMPONENTS)


@pytest.mark.parametrize("path", _dockerfiles(), ids=lambda p: p.parent.name)
def test_dockerfile_is_sound(path: Path) -> None:
    assert _problems(path) == []


@pytest.mark.parametrize("path", _dockerfiles(), ids=lambda p: p.parent.name)
def test_dockerfile_runs_its_component(path: Path) -> None:
    final = lint.parse(path).final
    argv = lint.exec_form(final.all("ENTRYPOINT")[-1].args)
    assert argv == [COMPONENTS[path.parent.name]]


@pytest.mark.parametrize("path", _dockerfiles(), ids=lambda p: p.parent.name)
def test_only_the_needed_code_and_extra(path: Path) -> None:
    """Service images carry no operator code and vice versa (libvips only where used)."""
    text = path.read_text()
    wanted, unwanted = (
        ("operator", "service") if path.parent.name == "operator" else ("service", "operator")
    )
    copied = [
        src for stage in lint.parse(path).stages for i in stage.all("COPY")
        for src in lint.copy_parts(i.args)[1] if "--from" not in lint.copy_parts(i.args)[0]
    ]
    assert any(s.strip("/") == wanted for s in copied)
    assert not any(s.strip("/").startswith(unwanted) for s in copied)
    assert f"[{wanted}]" in text and f"[{unwanted}]" not in text
    assert "libvips" not in " ".join(
        i.args for s in lint.parse(path).stages for i in s.all("RUN")
    ), "libvips comes from the pyvips-binary wheel"


def test_dockerignore_keeps_the_context_small() -> None:
    ignore = lint.DockerIgnore.load(ROOT / ".dockerignore")
    for private in (".git/config", ".venv/bin/python", "tests/conftest.py", "docs/x.md",
                    "service/thumbnail_service/__pycache__/a.cpython-311.pyc", ".dev/a"):
        assert ignore.excluded(private), private
    for needed in ("pyproject.toml", "service/thumbnail_service/cli.py",
                   "operator/thumbnail_operator/cli.py", "constraints.txt"):
        assert not ignore.excluded(needed), needed


def _lock() -> dict[str, str]:
    """constraints.txt: normalised name -> pinned version."""
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def test_constraints_pin_every_dependency() -> None:
    pins = set(_lock())
    project = pyproject()["project"]
    declared = project["dependencies"] + [
        dep for extra in ("service", "operator", "dev")
        for dep in project["optional-dependencies"][extra]
        if not dep.startswith("thumbnail-platform")
    ]
    names = {
        re.split(r"[<>=\[; ]", dep, maxsplit=1)[0].lower().replace("_", "-") for dep in declared
    }
    assert names <= pins, f"not pinned in constraints.txt: {sorted(names - pins)}"


def test_the_suite_runs_with_the_locked_versions() -> None:
    """`make venv` installs from the lock: a package at another version than it says means
    the environment was installed around it (or the lock was not regenerated with make lock)."""
    installed = {
        (dist.metadata["Name"] or "").lower().replace("_", "-"): dist.version
        for dist in importlib.metadata.distributions()
    }
    drifted = {name: (version, installed[name]) for name, version in _lock().items()
               if name in installed and installed[name] != version}
    assert not drifted, f"installed versions differ from constraints.txt (lock, found): {drifted}"
    missing = sorted(name for name in _lock() if name not in installed)
    assert not missing, f"locked but not installed (re-run make venv): {missing}"


def test_image_names_agree_everywhere() -> None:
    """build.sh tags what the CRD defaults and the operator Deployment pull."""
    script = (ROOT / "scripts" / "build.sh").read_text()
    built = dict(re.findall(r"^\s+(\w+)\) echo ([\w-]+) ;;$", script, flags=re.M))
    assert set(built) == set(COMPONENTS)
    crd = load_documents(CRDS / "thumbnailservices.yaml")[0]
    images = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"]["images"]["properties"]
    assert images["server"]["properties"]["repository"]["default"] == built["server"]
    assert images["worker"]["properties"]["repository"]["default"] == built["worker"]
    image = the_one("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.rsplit(":", 1)[0] == built["operator"]


# -- the checker itself can fail -------------------------------------------------------------

GOOD = """\
ARG BASE=python:3.11.14-slim-bookworm
FROM ${BASE} AS builder
RUN apt-get update && apt-get install -y --no-install-recommends build-essential
COPY pyproject.toml README.md /src/
COPY service/ /src/service/
FROM ${BASE}
ARG VERSION=@VERSION@
LABEL org.opencontainers.image.version="${VERSION}" org.opencontainers.image.source="x"
COPY --from=builder /wheels /wheels
USER 10001:10001
ENTRYPOINT ["thumbnail-api"]
"""


@pytest.mark.parametrize(
    "mutation,expected",
    [
        (("COPY service/ /src/service/", "COPY servic/ /src/service/"), "does not exist"),
        (("COPY service/ /src/service/", "COPY tests/ /src/tests/"), "excluded by .dockerignore"),
        (('["thumbnail-api"]', '["thumbnail-server"]'), "not a console script"),
        (('["thumbnail-api"]', '["thumbnail-operator"]'), "never COPYed"),
        (('["thumbnail-api"]', "thumbnail-api"), "exec form"),
        (("USER 10001:10001", "USER 0"), "runs as root"),
        (("USER 10001:10001", "USER app"), "numeric UID"),
        (("USER 10001:10001\n", ""), "no USER"),
        (("COPY --from=builder", "RUN apt-get install -y gcc make\nCOPY --from=builder"),
         "compiler in the final stage"),
        (("FROM ${BASE}\n", "FROM builder\n"), "has compilers"),
        (("python:3.11.14-slim-bookworm", "python:latest"), "not pinned"),
        (("--from=builder", "--from=bulder"), "no such stage"),
        (("org.opencontainers.image.source", "org.example"), "lacks the label"),
        (("ARG VERSION=", "ARG VERSION=9.9.9#"), "pyproject says"),
        (("USER 10001:10001", "ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH\n"
          "RUN python -m venv --without-pip /opt/venv && python -m pip install x\n"
          "USER 10001:10001"), "resolves into the venv"),
    ],
)
def test_checker_rejects(mutation: tuple[str, str], expected: str) -> None:
    version = pyproject()["project"]["version"]
    good = GOOD.replace("@VERSION@", version)
    path = IMAGES / "server" / "Dockerfile"
    assert _problems(path, good) == []
    old, new = mutation
    assert old in good
    found = _problems(path, good.replace(old, new, 1))
    assert any(expected in p for p in found), found


@pytest.mark.parametrize(
    "body,flagged",
    [
        # The bug every runtime stage had: the venv is on PATH before pip runs.
        ("ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH\n"
         "RUN --mount=type=bind,from=b,source=/w,target=/w python -m venv --without-pip "
         "/opt/venv && python -m pip --python /opt/venv/bin/python install x",
         ["python -m venv", "python -m pip"]),
        ("ENV PATH /opt/venv/bin:$PATH\nRUN python3 -m venv /opt/venv\nRUN pip install x",
         ["python3 -m venv", "pip"]),
        ("ENV PATH=/opt/venv/bin:$PATH\nRUN python3 -m venv /opt/venv; pip3 install x",
         ["python3 -m venv", "pip3"]),
        # Fine: PATH after the install, the base interpreter by absolute path, or the venv's
        # python used for something other than pip.
        ("RUN python -m venv --without-pip /opt/venv && python -m pip --python "
         "/opt/venv/bin/python install x\nENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH",
         []),
        ("ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH\nRUN /usr/local/bin/python -m venv "
         "--without-pip /opt/venv && /usr/local/bin/python -m pip install x", []),
        ("RUN python3 -m venv /opt/venv\nENV PATH=/opt/venv/bin:$PATH\n"
         "RUN python -c 'import x' && thumbnail-api --help", []),
    ],
)
def test_checker_finds_pip_run_through_the_venv_on_path(body: str, flagged: list[str]) -> None:
    """The regression check for "/opt/venv/bin/python: No module named pip", which broke every
    runtime stage: a bare python/pip resolves through PATH (and argv[0]) into the venv."""
    stage = lint.parse(IMAGES / "x" / "Dockerfile", f"FROM python:3.11.14-slim-bookworm\n{body}\n")
    found = lint.venv_shadowing(stage.final)
    assert [command for _, command, _ in found] == flagged
    assert all(venv == "/opt/venv" for _, _, venv in found)
