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
    database, redis, external = (
        spec.postgresql.connection, spec.redis.connection, spec.object_storage.connection
    )
    postgresql = (
        Endpoint(database.host, database.port) if database
        else Endpoint(names.postgresql, c.POSTGRES_PORT)
    )
    broker = Endpoint(redis.host, redis.port) if redis else Endpoint(names.redis, c.REDIS_PORT)
    if external is None:
        return Dependencies(postgresql, broker, Endpoint(names.minio, c.MINIO_API_PORT),
                            s3_secure=False, s3_region="us-east-1")
    host, _, port = external.endpoint.rpartition(":")
    s3 = (Endpoint(host, int(port)) if host
          else Endpoint(external.endpoint, 443 if external.secure else 80))
    return Dependencies(postgresql, broker, s3, external.secure, external.region)
