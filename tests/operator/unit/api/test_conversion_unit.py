"""Conversion v1alpha1 <-> v1: hand-written examples, the mapping table, edge cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.operator.unit.objects import META, full_alpha, full_v1
from thumbnail_operator.api.conversion import (
    V1,
    V1_EXTRAS,
    V1ALPHA1,
    V1ALPHA1_EXTRAS,
    ConversionError,
    convert,
    to_v1,
    to_v1alpha1,
)
from thumbnail_operator.api.conversion.core import Extras
from thumbnail_operator.api.conversion.mapping import MOVES, SPEC_MOVES, STATUS_MOVES
from thumbnail_operator.api.schema import v1, v1alpha1

from .schema_tools import apply_defaults, at, leaf_paths, prune


def test_full_object_converts_to_the_hand_written_v1() -> None:
    assert to_v1(full_alpha()) == full_v1()


def test_full_v1_converts_to_the_hand_written_v1alpha1() -> None:
    assert to_v1alpha1(full_v1()) == full_alpha()


def test_conversion_does_not_modify_its_input() -> None:
    alpha, beta = full_alpha(), full_v1()
    to_v1(alpha)
    to_v1alpha1(beta)
    assert alpha == full_alpha()
    assert beta == full_v1()


def test_converted_objects_survive_pruning_by_the_target_schema() -> None:
    converted = to_v1(full_alpha())
    assert prune(v1.version_schema(), converted) == converted
    back = to_v1alpha1(full_v1())
    assert prune(v1alpha1.version_schema(), back) == back


def test_same_version_is_returned_unchanged() -> None:
    assert to_v1(full_v1()) == full_v1()
    assert to_v1alpha1(full_alpha()) == full_alpha()
    assert convert(full_alpha(), V1ALPHA1) == full_alpha()


@pytest.mark.parametrize("api_version", ["thumbnails.platform.dev/v2", "apps/v1", None])
def test_unknown_source_version_is_an_error(api_version: str | None) -> None:
    obj = {**full_alpha(), "apiVersion": api_version}
    with pytest.raises(ConversionError, match="cannot convert apiVersion"):
        to_v1(obj)


def test_unknown_target_version_is_an_error() -> None:
    with pytest.raises(ConversionError, match="cannot convert to"):
        convert(full_alpha(), "thumbnails.platform.dev/v9")


# -- metadata -------------------------------------------------------------------------------


def test_metadata_is_preserved_and_no_annotation_is_added_when_nothing_is_lost() -> None:
    converted = to_v1(full_alpha())
    assert converted["metadata"] == META
    assert to_v1alpha1(converted)["metadata"] == META


def test_object_without_annotations_gets_none() -> None:
    alpha = full_alpha()
    del alpha["metadata"]["annotations"]
    assert "annotations" not in to_v1(alpha)["metadata"]


def test_object_without_metadata_stays_without() -> None:
    assert to_v1({"apiVersion": V1ALPHA1, "kind": "ThumbnailService"}) == {
        "apiVersion": V1, "kind": "ThumbnailService"
    }


# -- what one version cannot express ----------------------------------------------------------


def _presets(obj: dict[str, Any]) -> Any:
    return obj["spec"]["thumbnails"]["presets"]


def test_v1_preset_order_survives_a_trip_through_the_map() -> None:
    beta = full_v1()
    _presets(beta).reverse()  # hero, thumb: largest first, not the canonical order
    alpha = to_v1alpha1(beta)
    assert json.loads(alpha["metadata"]["annotations"][V1_EXTRAS]) == {
        "hints": {"spec.thumbnails.presets": {"order": ["hero", "thumb"]}}
    }
    assert to_v1(alpha) == beta


def test_preset_order_hint_applies_to_presets_edited_in_v1alpha1() -> None:
    beta = full_v1()
    _presets(beta).reverse()
    alpha = to_v1alpha1(beta)
    del _presets(alpha)["thumb"]
    _presets(alpha)["banner"] = {"width": 1200, "height": 300}
    _presets(alpha)["avatar"] = {"width": 32, "height": 32}
    names = [p["name"] for p in _presets(to_v1(alpha))]
    assert names == ["hero", "avatar", "banner"]  # hinted order first, then smallest first


def test_presets_without_a_hint_are_listed_smallest_first() -> None:
    alpha = {"apiVersion": V1ALPHA1, "spec": {"thumbnails": {"presets": {
        "b": {"width": 10, "height": 10}, "a": {"width": 10, "height": 10},
        "big": {"width": 20, "height": 5}, "tiny": {"width": 1, "height": 1}}}}}
    names = [p["name"] for p in _presets(to_v1(alpha))]
    assert names == ["tiny", "a", "b", "big"]


def test_empty_groups_survive_both_ways() -> None:
    alpha = {"apiVersion": V1ALPHA1, "kind": "ThumbnailService", "metadata": {"name": "x"},
             "spec": {"images": {}, "minio": {"console": {}}}}
    beta = to_v1(alpha)
    assert beta["spec"] == {"objectStorage": {"managed": {"console": {}}}}
    assert json.loads(beta["metadata"]["annotations"][V1ALPHA1_EXTRAS]) == {
        "empty": [["spec", "images"]]
    }
    assert to_v1alpha1(beta) == alpha

    beta2 = {"apiVersion": V1, "kind": "ThumbnailService", "metadata": {"name": "x"},
             "spec": {"workers": {}, "postgresql": {"managed": {}}}, "status": {}}
    alpha2 = to_v1alpha1(beta2)
    assert "spec" not in alpha2
    assert to_v1(alpha2) == beta2


def test_unknown_fields_are_kept_in_the_annotation() -> None:
    alpha = full_alpha()
    alpha["spec"]["minio"]["tier"] = "hot"  # a field this release does not know
    alpha["spec"]["futureGroup"] = {"x": 1}
    beta = to_v1(alpha)
    assert "tier" not in json.dumps(beta["spec"])
    extras = json.loads(beta["metadata"]["annotations"][V1ALPHA1_EXTRAS])
    assert extras["unmapped"] == [
        {"path": ["spec", "futureGroup"], "value": {"x": 1}},
        {"path": ["spec", "minio", "tier"], "value": "hot"},
    ]
    assert to_v1alpha1(beta) == alpha


def test_edits_made_in_the_other_version_win_over_stale_extras() -> None:
    beta = full_v1()
    beta["spec"]["server"]["futureField"] = "kept"
    alpha = to_v1alpha1(beta)
    alpha["spec"]["server"]["replicas"] = 9
    round_tripped = to_v1(alpha)
    assert round_tripped["spec"]["server"]["replicas"] == 9
    assert round_tripped["spec"]["server"]["futureField"] == "kept"
    # an extra for a path the user has since set is not applied over the user's value
    stale = Extras(unmapped=[(("spec", "server", "replicas"), 1)]).dumps()
    alpha["metadata"]["annotations"][V1_EXTRAS] = stale
    assert to_v1(alpha)["spec"]["server"]["replicas"] == 9


def test_extras_annotation_of_the_wrong_direction_is_dropped() -> None:
    alpha = full_alpha()
    alpha["metadata"]["annotations"][V1ALPHA1_EXTRAS] = '{"empty":[["spec","bogus"]]}'
    assert to_v1(alpha) == full_v1()


@pytest.mark.parametrize("garbage", ["", "not json", "[]", '{"empty": "x"}',
                                     '{"unmapped": [{"path": []}]}', '{"hints": []}'])
def test_malformed_extras_are_ignored(garbage: str) -> None:
    alpha = full_alpha()
    alpha["metadata"]["annotations"][V1_EXTRAS] = garbage
    assert to_v1(alpha) == full_v1()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("postgresql", "enabled"), "yes", "must be a boolean"),
        (("images", "pullSecrets"), "regcred", "list of names"),
        (("thumbnails", "presets"), ["small"], "map of sizes"),
        (("thumbnails", "presets"), {"a": {"name": "b", "width": 1, "height": 1}}, "`name`"),
    ],
)
def test_alpha_values_of_the_wrong_shape_fail_clearly(
    path: tuple[str, str], value: Any, message: str
) -> None:
    alpha = full_alpha()
    alpha["spec"][path[0]][path[1]] = value
    with pytest.raises(ConversionError, match=message):
        to_v1(alpha)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("redis", "mode"), "Sometimes", "must be Managed or External"),
        (("imagePullSecrets",), ["regcred"], r"list of \{name"),
        (("thumbnails", "presets"), [{"name": "a"}, {"name": "a"}], "duplicate names"),
        (("thumbnails", "presets"), {"a": {}}, "list of named sizes"),
    ],
)
def test_v1_values_of_the_wrong_shape_fail_clearly(
    path: tuple[str, ...], value: Any, message: str
) -> None:
    beta = full_v1()
    node = beta["spec"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ConversionError, match=message):
        to_v1alpha1(beta)


@pytest.mark.parametrize(("enabled", "mode"), [(True, "Managed"), (False, "External")])
@pytest.mark.parametrize(("alpha_key", "v1_key"),
                         [("postgresql", "postgresql"), ("redis", "redis"),
                          ("minio", "objectStorage")])
def test_enabled_maps_to_mode_for_every_data_store(
    enabled: bool, mode: str, alpha_key: str, v1_key: str
) -> None:
    alpha = {"apiVersion": V1ALPHA1, "spec": {alpha_key: {"enabled": enabled}}}
    assert to_v1(alpha)["spec"] == {v1_key: {"mode": mode}}
    assert to_v1alpha1(to_v1(alpha)) == alpha


# -- the table against the schemas -------------------------------------------------------------


def _covered(path: tuple[str, ...], roots: list[tuple[str, ...]]) -> bool:
    return any(path[: len(root)] == root for root in roots)


@pytest.mark.parametrize(("schema_of", "side"),
                         [(v1alpha1.version_schema, "alpha"), (v1.version_schema, "v1")])
def test_every_field_of_either_version_has_a_home_in_the_other(
    schema_of: Any, side: str
) -> None:
    schema = schema_of()
    roots = [m.alpha if side == "alpha" else m.v1 for m in MOVES]
    homeless = [
        ".".join(p)
        for p in leaf_paths(schema)
        if p[0] in ("spec", "status") and not _covered(p, roots)
    ]
    assert homeless == []


def test_no_moved_path_contains_another() -> None:
    for side in ("alpha", "v1"):
        paths = [m.alpha if side == "alpha" else m.v1 for m in MOVES]
        assert len(set(paths)) == len(paths)
        for a in paths:
            for b in paths:
                assert a == b or a[: len(b)] != b, (a, b)


def _without_descriptions(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_descriptions(v) for k, v in schema.items() if k != "description"}
    if isinstance(schema, list):
        return [_without_descriptions(v) for v in schema]
    return schema


def test_subtrees_copied_unchanged_have_the_same_schema_in_both_versions() -> None:
    alpha, beta = v1alpha1.version_schema(), v1.version_schema()
    for move in MOVES:
        if move.identity:
            assert _without_descriptions(at(alpha, move.alpha)) == _without_descriptions(
                at(beta, move.v1)
            ), move


def test_spec_and_status_tables_are_separate() -> None:
    assert all(m.alpha[0] == m.v1[0] == "spec" for m in SPEC_MOVES)
    assert all(m.alpha[0] == m.v1[0] == "status" for m in STATUS_MOVES)


def test_defaults_of_both_versions_agree() -> None:
    """The API server defaults after converting; identical defaults keep reads stable."""
    empty_alpha = {"apiVersion": V1ALPHA1, "kind": "ThumbnailService", "spec": {}}
    defaulted_alpha = apply_defaults(v1alpha1.version_schema(), empty_alpha)
    defaulted_v1 = apply_defaults(v1.version_schema(), to_v1(empty_alpha))
    assert to_v1(defaulted_alpha)["spec"] == defaulted_v1["spec"]
    assert to_v1alpha1(defaulted_v1)["spec"] == defaulted_alpha["spec"]


def test_external_mode_example_round_trips() -> None:
    beta = full_v1()
    beta["spec"]["objectStorage"]["mode"] = "External"
    beta["spec"]["objectStorage"]["external"] = {
        "endpoint": "s3.example.com:443", "secure": True, "region": "eu-west-1",
        "secretRef": {"name": "s3", "accessKeyKey": "a", "secretKeyKey": "s"},
    }
    alpha = to_v1alpha1(beta)
    assert alpha["spec"]["minio"]["enabled"] is False
    assert alpha["spec"]["minio"]["external"]["region"] == "eu-west-1"
    assert to_v1(alpha) == beta


def test_the_v1_sample_is_the_v1alpha1_sample() -> None:
    samples = Path(__file__).resolve().parents[4] / "crds" / "samples"
    alpha = yaml.safe_load((samples / "thumbnailservice-v1alpha1.yaml").read_text())
    beta = yaml.safe_load((samples / "thumbnailservice.yaml").read_text())
    converted = to_v1alpha1(beta)
    # `mode: Managed` (the default) is spelled out in the v1 sample only.
    for store in ("postgresql", "redis", "minio"):
        assert converted["spec"][store].pop("enabled") is True
        if not converted["spec"][store]:
            del converted["spec"][store]
    assert converted == alpha
