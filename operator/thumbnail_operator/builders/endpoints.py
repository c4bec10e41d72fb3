"""Where the dependencies are: managed in-cluster Services or the user's external servers."""

from __future__ import annotations

from dataclasses import dataclass

from thumbnail_operator import constants as c
from thumbnail_operator.builders.common import Context


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Dependencies:
    postgresql: Endpoint
    redis: Endpoint
    s3: Endpoint
    s3_secure: bool
    s3_region: str


def dependencies(ctx: Context) -> Dependencies:
    spec, names = ctx.spec, ctx.names
    pg, redis, minio = spec.postgresql, spec.redis, spec.minio
    postgresql = (
        Endpoint(pg.external.host, pg.external.port)
        if not pg.enabled and pg.external else Endpoint(names.postgresql, c.POSTGRES_PORT)
    )
    broker = (
        Endpoint(redis.external.host, redis.external.port)
        if not redis.enabled and redis.external else Endpoint(names.redis, c.REDIS_PORT)
    )
    if minio.enabled or minio.external is None:
        return Dependencies(postgresql, broker, Endpoint(names.minio, c.MINIO_API_PORT),
                            s3_secure=False, s3_region="us-east-1")
    external = minio.external
    host, _, port = external.endpoint.rpartition(":")
    s3 = (Endpoint(host, int(port)) if host
          else Endpoint(external.endpoint, 443 if external.secure else 80))
    return Dependencies(postgresql, broker, s3, external.secure, external.region)
