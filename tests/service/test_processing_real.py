"""Upload -> worker -> MinIO, end to end against real PostgreSQL, Redis and MinIO."""

from __future__ import annotations

import asyncio
import base64
from datetime import datetime
from typing import Any

import dramatiq
import httpx
import pytest
import pyvips
from dramatiq.brokers.redis import RedisBroker
from minio import Minio

from tests.service import images
from tests.service.stack import Stack, wait_for
from thumbnail_service.imaging.placeholder import aspect_ratio, average_rgba

pytestmark = pytest.mark.services
FINISHED = {"succeeded", "failed"}


def submit(client: httpx.Client, data: bytes, filename: str = "x", **fields: str) -> Any:
    response = client.post("/v1/jobs", files={"file": (filename, data)}, data=fields)
    assert response.status_code == 202, response.text
    return response.json()


def wait_finished(client: httpx.Client, job_id: str, stack: Stack, timeout: float = 60) -> Any:
    def finished() -> Any:
        job = client.get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] in FINISHED else None

    try:
        return wait_for(finished, timeout=timeout, what=f"job {job_id} to finish")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.logs()}") from None


def objects(s3: Minio, bucket: str, job_id: str) -> dict[str, bytes]:
    found = {}
    for obj in s3.list_objects(bucket, prefix=f"{job_id}/"):
        response = s3.get_object(bucket, obj.object_name)
        found[obj.object_name.split("/", 1)[1]] = response.read()
        response.close()
    return found


@pytest.mark.parametrize(
    ("fmt", "save_ext", "expected_auto"),
    [("jpeg", "jpg", "jpeg"), ("png", "png", "png"), ("webp", "webp", "webp")],
)
def test_every_size_lands_in_minio_with_right_dimensions_and_format(
    worker_stack: Stack,
    client: httpx.Client,
    s3: Minio,
    service_env: dict[str, str],
    fmt: str,
    save_ext: str,
    expected_auto: str,
) -> None:
    source = images.encode(images.two_halves(1200, 800), save_ext)
    job = submit(client, source, sizes="small,300x300,wide=400x100", fit="inside")
    assert job["status"] == "queued" and job["original"]["format"] == fmt

    done = wait_finished(client, job["id"], worker_stack)
    assert done["status"] == "succeeded", done
    assert done["error"] is None and done["attempts"] == 1
    assert done["started_at"] and done["finished_at"] >= done["started_at"]
    assert (done["original"]["width"], done["original"]["height"]) == (1200, 800)
    # inside: aspect ratio kept, bounded by the box.
    expected = {"small": (128, 85), "300x300": (300, 200), "wide": (150, 100)}
    got = {t["name"]: (t["width"], t["height"]) for t in done["thumbnails"]}
    assert got == expected

    # The placeholder: a ThumbHash of this 3:2 red|blue image, absent while queued.
    assert job["placeholder"] is None
    hashed = base64.b64decode(done["placeholder"])
    assert 1.2 < aspect_ratio(hashed) < 1.8
    red, green, blue, _ = average_rgba(hashed)
    assert red > 0.3 and blue > 0.3 and green < 0.2, (red, green, blue)

    stored = objects(s3, service_env["THUMBNAIL_BUCKET_THUMBNAILS"], job["id"])
    assert set(stored) == set(expected)
    for thumb in done["thumbnails"]:
        image = pyvips.Image.new_from_buffer(stored[thumb["name"]], "")
        assert (image.width, image.height) == expected[thumb["name"]]
        assert image.get("vips-loader").startswith(expected_auto)
        assert thumb["format"] == expected_auto
        assert thumb["bytes"] == len(stored[thumb["name"]])


@pytest.mark.parametrize("fit", ["cover", "smart"])
def test_cover_and_smart_produce_exact_sizes(
    worker_stack: Stack, client: httpx.Client, s3: Minio, service_env: dict[str, str], fit: str
) -> None:
    source = images.encode(images.two_halves(1000, 500), "png")
    job = submit(client, source, sizes="sq=200x200,tall=100x300", fit=fit, format="webp")
    done = wait_finished(client, job["id"], worker_stack)
    assert done["status"] == "succeeded", done
    stored = objects(s3, service_env["THUMBNAIL_BUCKET_THUMBNAILS"], job["id"])
    for name, size in {"sq": (200, 200), "tall": (100, 300)}.items():
        image = pyvips.Image.new_from_buffer(stored[name], "")
        assert (image.width, image.height) == size
        assert image.get("vips-loader").startswith("webp")


@pytest.mark.parametrize("fit", ["cover", "smart"])
def test_extreme_aspect_ratio_to_cover_renders_every_preset_in_time(
    worker_stack: Stack, client: httpx.Client, s3: Minio, service_env: dict[str, str], fit: str
) -> None:
    # An 8000x10 strip to every preset (large = 1024x1024 is a x102 enlargement): scaling
    # the whole strip before cropping built 819200x1024 pixels, 14-15 s on an idle 2-core
    # machine and past the 30 s time limit on a busy one; cropping first scales 10x10
    # source pixels per size (0.05 s).
    source = images.encode(images.two_halves(8000, 10), "png")
    job = submit(client, source, sizes="small,medium,large", fit=fit, format="png")
    done = wait_finished(client, job["id"], worker_stack, timeout=90)
    assert done["status"] == "succeeded", done
    took = datetime.fromisoformat(done["finished_at"]) - datetime.fromisoformat(done["started_at"])
    assert took.total_seconds() < 5, done
    stored = objects(s3, service_env["THUMBNAIL_BUCKET_THUMBNAILS"], job["id"])
    for name, side in {"small": 128, "medium": 512, "large": 1024}.items():
        image = pyvips.Image.new_from_buffer(stored[name], "")
        assert (image.width, image.height) == (side, side)
        if fit == "cover":  # the middle of the strip: red left of centre, blue right of it
            left, right = images.pixel(stored[name], side // 4, side // 2), images.pixel(
                stored[name], 3 * side // 4, side // 2
            )
            assert left[0] > 200 and left[2] < 60, left
            assert right[2] > 200 and right[0] < 60, right


def test_exif_orientation_is_applied(
    worker_stack: Stack, client: httpx.Client, s3: Minio, service_env: dict[str, str]
) -> None:
    # Stored 400x200 with left half red; orientation 6 displays it 200x400 with red on top.
    source = images.jpeg_with_orientation(400, 200, 6)
    job = submit(client, source, sizes="box=100x100", format="png")
    assert (job["original"]["width"], job["original"]["height"]) == (200, 400)
    done = wait_finished(client, job["id"], worker_stack)
    assert done["status"] == "succeeded", done
    data = objects(s3, service_env["THUMBNAIL_BUCKET_THUMBNAILS"], job["id"])["box"]
    image = pyvips.Image.new_from_buffer(data, "")
    assert (image.width, image.height) == (50, 100)
    top, bottom = images.pixel(data, 25, 10), images.pixel(data, 25, 90)
    assert top[0] > 200 and top[2] < 60, top  # red
    assert bottom[2] > 200 and bottom[0] < 60, bottom  # blue
    assert image.get_typeof("orientation") == 0 or image.get("orientation") == 1


def test_download_endpoint_serves_the_thumbnail_with_cache_headers(
    worker_stack: Stack, client: httpx.Client
) -> None:
    job = submit(client, images.encode(images.two_halves(640, 480), "jpg"), sizes="small")
    done = wait_finished(client, job["id"], worker_stack)
    thumb = done["thumbnails"][0]
    response = client.get(thumb["url"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert "max-age" in response.headers["cache-control"]
    etag = response.headers["etag"]
    assert len(response.content) == thumb["bytes"]
    assert client.get(thumb["url"], headers={"If-None-Match": etag}).status_code == 304

    redirect = client.get(thumb["url"], params={"redirect": "true"})
    assert redirect.status_code == 307
    presigned = httpx.get(redirect.headers["location"], timeout=10)
    assert presigned.status_code == 200 and presigned.content == response.content


def test_truncated_image_fails_at_once_without_retries(
    worker_stack: Stack, client: httpx.Client
) -> None:
    whole = images.encode(images.noise(800, 600), "jpg", Q=95)
    job = submit(client, whole[: len(whole) // 3], sizes="small")
    done = wait_finished(client, job["id"], worker_stack)
    assert done["status"] == "failed"
    assert done["attempts"] == 1
    assert "corrupt" in done["error"] or "truncated" in done["error"], done["error"]
    # Its thumbnail will never exist: a 404 that says why, not "not available yet".
    thumbnail = client.get(f"/v1/jobs/{job['id']}/thumbnails/small")
    assert thumbnail.status_code == 404, thumbnail.text
    assert "failed" in thumbnail.json()["error"]["message"], thumbnail.text


def test_idempotency_key_returns_the_same_job(worker_stack: Stack, client: httpx.Client) -> None:
    data = images.encode(images.two_halves(300, 200), "png")
    headers = {"Idempotency-Key": "order-42-" + worker_stack.env["THUMBNAIL_QUEUE_NAME"]}
    first = client.post(
        "/v1/jobs", files={"file": ("a.png", data)}, data={"sizes": "small"}, headers=headers
    )
    second = client.post(
        "/v1/jobs", files={"file": ("a.png", data)}, data={"sizes": "small"}, headers=headers
    )
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["idempotent-replayed"] == "true"
    other = client.post(
        "/v1/jobs", files={"file": ("a.png", data)}, data={"sizes": "medium"}, headers=headers
    )
    assert other.status_code == 409
    assert other.json()["error"]["field"] == "Idempotency-Key"


def test_list_is_newest_first_with_cursor_and_status_filter(
    worker_stack: Stack, client: httpx.Client
) -> None:
    data = images.encode(images.two_halves(64, 64), "png")
    ids = [submit(client, data, sizes="8x8")["id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/jobs", params=params).json()
        seen += [j["id"] for j in page["items"]]
        assert len(page["items"]) <= 2
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen[:5] == list(reversed(ids))
    assert len(seen) == len(set(seen))
    for job_id in ids:
        wait_finished(client, job_id, worker_stack)
    failed = client.get("/v1/jobs", params={"status": "failed", "limit": 100}).json()["items"]
    assert all(j["status"] == "failed" for j in failed)
    assert not {j["id"] for j in failed} & set(ids)


def test_delete_removes_job_and_objects(
    worker_stack: Stack, client: httpx.Client, s3: Minio, service_env: dict[str, str]
) -> None:
    job = submit(client, images.encode(images.two_halves(300, 300), "png"), sizes="small")
    wait_finished(client, job["id"], worker_stack)
    assert objects(s3, service_env["THUMBNAIL_BUCKET_THUMBNAILS"], job["id"])
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert client.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 404
    assert not objects(s3, service_env["THUMBNAIL_BUCKET_THUMBNAILS"], job["id"])
    assert not objects(s3, service_env["THUMBNAIL_BUCKET_ORIGINALS"], job["id"])


async def test_thumbnail_rows_match_objects(
    worker_stack: Stack, client: httpx.Client, db: Any
) -> None:
    job = submit(client, images.encode(images.two_halves(500, 500), "png"), sizes="small,medium")
    await asyncio.to_thread(wait_finished, client, job["id"], worker_stack)
    rows = await db.fetch(
        "SELECT name, object_key FROM thumbnails WHERE job_id = $1::uuid", job["id"]
    )
    assert {r["name"]: r["object_key"] for r in rows} == {
        "small": f"{job['id']}/small",
        "medium": f"{job['id']}/medium",
    }


def test_duplicate_message_for_a_finished_job_changes_nothing(
    worker_stack: Stack, client: httpx.Client, redis_server: Any
) -> None:
    job = submit(client, images.encode(images.two_halves(300, 200), "png"), sizes="small")
    done = wait_finished(client, job["id"], worker_stack)
    assert done["status"] == "succeeded"

    broker = RedisBroker(host=redis_server.host, port=redis_server.port)  # type: ignore[no-untyped-call]
    queue = worker_stack.env["THUMBNAIL_QUEUE_NAME"]
    broker.declare_queue(queue)
    for _ in range(2):  # a redelivery and a stale retry, as the broker may produce
        broker.enqueue(
            dramatiq.Message(
                queue_name=queue, actor_name="process_job", args=(job["id"],), kwargs={}, options={}
            )
        )
    logs = [w.log for w in worker_stack.workers]
    wait_for(
        lambda: sum(log.read_text().count(f"job {job['id']}: not claimable") for log in logs) >= 2,
        timeout=30,
        what="the worker to drop both duplicate messages",
    )
    after = client.get(f"/v1/jobs/{job['id']}").json()
    assert after == done
    broker.close()


def test_burst_of_jobs_all_succeed_once_and_metrics_count_them(
    worker_stack: Stack, client: httpx.Client, s3: Minio, service_env: dict[str, str]
) -> None:
    data = images.encode(images.two_halves(800, 600), "jpg")
    ids = [submit(client, data, sizes="small,medium")["id"] for _ in range(12)]
    for job_id in ids:
        done = wait_finished(client, job_id, worker_stack, timeout=90)
        assert done["status"] == "succeeded" and done["attempts"] == 1, done
        stored = objects(s3, service_env["THUMBNAIL_BUCKET_THUMBNAILS"], job_id)
        assert sorted(stored) == ["medium", "small"]
    metrics = httpx.get(f"{worker_stack.base_url}/metrics").text
    counts = {
        line.split('"')[1]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("thumbnail_jobs{")
    }
    listed = client.get("/v1/jobs", params={"status": "succeeded", "limit": 100}).json()
    assert counts["succeeded"] == len(listed["items"]) >= len(ids)
    assert counts["queued"] == counts["processing"] == 0
