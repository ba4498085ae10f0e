# Versions that key the caches under ~/.cache/monoscape (bump to rebuild).
# shellcheck shell=bash
MONOSCAPE_IMAGE_VERSION=v1
MONOSCAPE_IMAGE=localhost/monoscape/debian-systemd:12-$MONOSCAPE_IMAGE_VERSION
