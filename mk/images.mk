# Local container images for the real node (tools/build-images.sh): built on this machine with
# buildah from a debootstrapped Debian base, Debian packages, PyPI wheels and the pinned Go
# modules, never pulled; cached outside git by input hash (tag = hash), exported as
# `docker save` tars, listed in the index that tools/thumbnail_substrate/images.py reads.
# Included by the root Makefile.
#   make images         build what changed (seconds when nothing did), write the index
#   make images-smoke   run each image under runc as its pod would (images/smoke.sh)

.PHONY: images images-smoke

images: ## container images for the real node, built here with buildah (first run a few minutes, then cached)
	@tools/build-images.sh

images-smoke: images ## run each local image under runc the way its pod runs it (no cluster)
	@images/smoke.sh
