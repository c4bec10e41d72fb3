"""The local images of tools/build-images.sh, statically (no build here): the Containerfiles
use no upstream image and run as the UIDs the operator's pods run them with, every component
the script builds is one the index reader knows, and the reader's errors say `make images`."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.deploy import dockerfile_lint as lint
from tests.deploy.support import IMAGES, ROOT
from thumbnail_operator.builders.common import APP_UID
from thumbnail_operator.builders.workloads import DATA_UID, MINIO_UID
from thumbnail_substrate import images as local
from thumbnail_substrate.errors import SubstrateError

# The UID each image runs as = the pod securityContext the operator gives it.
UIDS = {"postgresql": DATA_UID, "redis": DATA_UID, "minio": MINIO_UID, "mc": MINIO_UID,
        "wait": APP_UID, "pause": 65535}
SCRIPT = ROOT / "tools" / "build-images.sh"


def _containerfiles() -> list[Path]:
    return sorted(IMAGES.glob("*/Containerfile"))


def test_the_script_and_the_reader_agree_on_the_components() -> None:
    listed = re.search(r"^ALL_COMPONENTS=\(([^)]*)\)", SCRIPT.read_text(), flags=re.M)
    assert listed is not None
    assert tuple(listed.group(1).split()) == local.COMPONENTS
    dependency_images = {p.parent.name for p in _containerfiles()}
    assert dependency_images == set(UIDS)
    assert dependency_images | {p.parent.name for p in IMAGES.glob("*/Dockerfile")} == set(
        local.COMPONENTS
    )


@pytest.mark.parametrize("path", _containerfiles(), ids=lambda p: p.parent.name)
def test_containerfile_uses_only_local_images(path: Path) -> None:
    parsed = lint.parse(path)
    assert len(parsed.stages) == 1
    base = parsed.stages[0].base
    if base != "scratch":
        assert base == "${BASE_IMAGE}"
        assert parsed.global_args["BASE_IMAGE"] == "localhost/thumbnail-base-python:3.11-bookworm"
    instructions = " ".join(
        [*parsed.global_args.values(), base]
        + [i.args for i in parsed.stages[0].instructions if i.keyword != "LABEL"]
    )
    for upstream in ("postgres:", "redis:", "minio/", "busybox", "docker.io", "registry.k8s.io",
                     "quay.io", "ghcr.io"):
        assert upstream not in instructions, upstream


@pytest.mark.parametrize("path", _containerfiles(), ids=lambda p: p.parent.name)
def test_containerfile_runs_as_the_pods_uid(path: Path) -> None:
    final = lint.parse(path).final
    user = final.all("USER")[-1].args.split(":")
    assert [int(part) for part in user] == [UIDS[path.parent.name]] * 2
    entry = final.all("ENTRYPOINT") or final.all("CMD")
    assert lint.exec_form(entry[-1].args), "exec form, so the operator's args are appended"
    labels = " ".join(i.args for i in final.all("LABEL"))
    assert f'org.opencontainers.image.title="thumbnail-{path.parent.name}"' in labels


def test_postgresql_entrypoint_reads_what_the_operator_sets() -> None:
    entrypoint = IMAGES / "postgresql" / "entrypoint.sh"
    subprocess.run(["sh", "-n", str(entrypoint)], check=True, timeout=10)
    text = entrypoint.read_text()
    for name in ("POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD", "PGDATA"):
        assert f"${{{name}" in text, name
    assert "scram-sha-256" in text and "listen_addresses = '*'" in text
    assert text.rstrip().endswith('exec postgres "$@"')
    containerfile = (IMAGES / "postgresql" / "Containerfile").read_text()
    assert "ENV PATH=/usr/lib/postgresql/15/bin:" in containerfile, "pg_isready on PATH"


# -- the index reader ------------------------------------------------------------------------


def _index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entries: object) -> None:
    monkeypatch.setenv("THUMBNAIL_IMAGES_CACHE", str(tmp_path))
    (tmp_path / "index.json").write_text(json.dumps(entries))


def _entries(tmp_path: Path) -> dict[str, dict[str, str]]:
    entries = {}
    for name in local.COMPONENTS:
        archive = tmp_path / f"thumbnail-{name}-0123456789abcdef.tar"
        archive.write_bytes(b"")
        entries[name] = {"ref": f"localhost/thumbnail-{name}:0123456789abcdef",
                         "archive": str(archive), "inputs": "0123456789abcdef"}
    return entries


def test_reader_returns_every_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _index(tmp_path, monkeypatch, _entries(tmp_path))
    found = local.local_images()
    assert set(found) == set(local.COMPONENTS)
    assert found["pause"] == local.LocalImage(
        ref="localhost/thumbnail-pause:0123456789abcdef",
        archive=tmp_path / "thumbnail-pause-0123456789abcdef.tar",
    )


def test_reader_default_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("THUMBNAIL_IMAGES_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert local.index_path() == tmp_path / "thumbnail-platform" / "images" / "index.json"


@pytest.mark.parametrize(
    "damage,expected",
    [
        ("no index", "no image index"),
        ("not json", "unreadable image index"),
        ("no pause", "lacks pause"),
        ("no archive", "image archive of wait is missing"),
        ("bad entry", "bad entry 'redis'"),
    ],
)
def test_reader_says_run_make_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str, expected: str
) -> None:
    entries = _entries(tmp_path)
    _index(tmp_path, monkeypatch, entries)
    if damage == "no index":
        (tmp_path / "index.json").unlink()
    elif damage == "not json":
        (tmp_path / "index.json").write_text("{")
    elif damage == "no pause":
        del entries["pause"]
        _index(tmp_path, monkeypatch, entries)
    elif damage == "no archive":
        Path(entries["wait"]["archive"]).unlink()
    elif damage == "bad entry":
        entries["redis"] = {"ref": "x"}
        _index(tmp_path, monkeypatch, entries)
    with pytest.raises(SubstrateError, match=expected) as caught:
        local.local_images()
    assert str(caught.value).endswith("run `make images`")
