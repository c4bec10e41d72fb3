"""thumbnail-admin: the API keys of tenants (docs/api.md, "Tenants"), against the database the
THUMBNAIL_DATABASE_* settings name (in a cluster: `kubectl exec deploy/NAME-server --
thumbnail-admin keys ...`).

    thumbnail-admin keys create TENANT [--name NAME] [--rate-limit PER_MINUTE]
                                [--callback-url URL]   a new key; its secret printed once
    thumbnail-admin keys list [TENANT]                 ids, tenants, names, never secrets
    thumbnail-admin keys revoke KEY_ID                 refused within 10 s on every replica
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from .errors import DependencyUnavailable
from .keys import LOOKUP_CACHE_SECONDS, ApiKeys, check_tenant
from .repository import JobRepository, create_pool
from .settings import Settings
from .webhooks.targets import CallbackRefused, check_written_address, parse_callback_url


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="thumbnail-admin", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    keys = parser.add_subparsers(dest="area", required=True).add_parser("keys")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key of TENANT")
    create.add_argument("tenant", type=_tenant)
    create.add_argument("--name", default="", help="what the key is for (shown by list)")
    create.add_argument("--rate-limit", type=int, default=None, metavar="PER_MINUTE",
                        help="this key's requests per minute (default: the service's "
                        "THUMBNAIL_RATE_LIMIT_PER_MINUTE; 0: unlimited)")
    create.add_argument("--callback-url", default=None, metavar="URL",
                        help="completion webhook of this key's submissions that name none")
    listing = actions.add_parser("list", help="list keys (of TENANT)")
    listing.add_argument("tenant", nargs="?", type=_tenant)
    revoke = actions.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    return parser


def _tenant(text: str) -> str:
    try:
        return check_tenant(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    pool = await create_pool(settings)
    try:
        keys = ApiKeys(JobRepository.from_settings(pool, settings))
        if args.action == "create":
            if args.callback_url is not None:  # the checks a submission's field gets
                check_written_address(parse_callback_url(args.callback_url),
                                      settings.webhook_networks)
            key, secret = await keys.create(args.tenant, args.name, args.rate_limit,
                                            args.callback_url)
            print(json.dumps({"id": key.id, "tenant": key.tenant, "name": key.name,
                              "rate_limit_per_minute": key.rate_limit_per_minute,
                              "callback_url": key.callback_url, "key": secret}))
            print("the key is shown only now: only its SHA-256 is stored", file=sys.stderr)
        elif args.action == "list":
            for key in await keys.list(args.tenant):
                print(json.dumps({"id": key.id, "tenant": key.tenant, "name": key.name,
                                  "rate_limit_per_minute": key.rate_limit_per_minute,
                                  "callback_url": key.callback_url,
                                  "created_at": key.created_at.isoformat(),
                                  "revoked_at": key.revoked_at and key.revoked_at.isoformat()}))
        elif await keys.revoke(args.key_id):
            print(f"revoked {args.key_id}: refused everywhere within "
                  f"{LOOKUP_CACHE_SECONDS:g} s", file=sys.stderr)
        else:
            print(f"no live key {args.key_id}", file=sys.stderr)
            return 1
        return 0
    finally:
        await pool.close()


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        sys.exit(asyncio.run(_run(args, Settings())))
    except (DependencyUnavailable, CallbackRefused) as exc:
        sys.exit(f"thumbnail-admin: {exc}")


if __name__ == "__main__":
    main()
