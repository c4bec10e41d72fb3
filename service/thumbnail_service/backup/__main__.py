"""`python -m thumbnail_service.backup`, the same as the `thumbnail-backup` console script."""

from .cli import main

main()
