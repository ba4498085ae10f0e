"""Uploaded packages, kept per app: <root>/<tenant>/<app>/<version>.zip with a
<version>.json beside it (sha256, size, who uploaded it and when).

An upload is streamed to a temporary file in the app's folder with a byte budget
(the package limit: one byte more and it is cut off), then checked with the bundle's
package rules (inspect: the same rules the control node and the nodes apply), and
only then renamed into place. A refused upload leaves nothing. A version is
immutable: the same version again is accepted only with the same content (as
deploy_app.yml refuses "the same version from another package")."""

import contextlib
import datetime
import hashlib
import json
import os
import pathlib

from ansible_collections.monoscape.paas.plugins.module_utils import monoscape_package as pkg

CHUNK = 64 * 1024


class UploadRefused(Exception):
    """The upload is not kept: status (HTTP) and the rule's one-line message."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


class Releases:
    def __init__(self, root, keep=5, max_bytes=pkg.DEFAULT_MAX_BYTES):
        self.root, self.keep, self.max_bytes = pathlib.Path(root), keep, max_bytes

    @classmethod
    def from_settings(cls, settings):
        root = settings.releases_dir or f"{settings.state_dir}/releases"
        return cls(root, settings.releases_kept, settings.upload_max_bytes)

    def folder(self, tenant, app):
        try:
            pkg.check_app_identity(tenant, app)  # each name, and the two together (derived names)
        except pkg.PackageError as exc:
            raise UploadRefused(400, str(exc)) from None
        return self.root / tenant / app

    def receive(self, stream, tenant, app, version, *, user, length=None):
        """Keep the package read from `stream` as `version` of tenant/app; returns its record."""
        folder = self.folder(tenant, app)
        try:
            pkg.check_version(version)
        except pkg.PackageError as exc:
            raise UploadRefused(400, str(exc)) from None
        if length is not None and length > self.max_bytes:
            raise UploadRefused(413, f"the package is {length} bytes; the limit is {self.max_bytes}")
        folder.mkdir(parents=True, exist_ok=True, mode=0o750)
        partial = folder / f".{version}.{os.getpid()}.upload"
        try:
            digest, size = self._stream_to(partial, stream)
            try:
                info = pkg.inspect(str(partial), self.max_bytes, sha256=digest)
            except pkg.PackageError as exc:
                # the rule's message names the upload, not where the service keeps it
                raise UploadRefused(422, str(exc).replace(str(partial), f"{tenant}/{app} {version}")) from None
            existing = self.record(tenant, app, version)
            if existing and existing["sha256"] != info["sha256"]:
                raise UploadRefused(
                    409,
                    f"{tenant}/{app} {version} exists with other content (sha256 {existing['sha256'][:12]}...):"
                    " give the new package a new version",
                )
            record = {
                "tenant": tenant,
                "app": app,
                "version": version,
                "sha256": info["sha256"],
                "size": size,
                "files": info["files"],
                "uploaded_by": user,
                "uploaded_at": existing["uploaded_at"]
                if existing
                else datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            }
            os.replace(partial, folder / f"{version}.zip")
            if not existing:
                (folder / f".{version}.json").write_text(json.dumps(record, sort_keys=True))
                os.replace(folder / f".{version}.json", folder / f"{version}.json")
            return record
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()

    def _stream_to(self, path, stream):
        digest, size = hashlib.sha256(), 0
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > self.max_bytes:
                    raise UploadRefused(413, f"the package is larger than the limit, {self.max_bytes} bytes")
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise UploadRefused(400, "the upload is empty: send the package's zip file as the body")
        return digest.hexdigest(), size

    def record(self, tenant, app, version):
        path = self.folder(tenant, app) / f"{version}.json"
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None

    def path(self, tenant, app, version):
        """The kept package file of a version (None if not kept)."""
        path = self.folder(tenant, app) / f"{version}.zip"
        return path if path.is_file() and self.record(tenant, app, version) else None

    def list(self, tenant, app):
        """The kept releases of an app, oldest upload first."""
        folder = self.folder(tenant, app)
        records = []
        for path in folder.glob("*.json") if folder.is_dir() else []:
            with contextlib.suppress(ValueError, OSError):
                records.append(json.loads(path.read_text()))
        return sorted(records, key=lambda r: (r["uploaded_at"], r["version"]))

    def prune(self, tenant, app, in_use=()):
        """Keep the newest `keep` uploads and every version in `in_use` (deployed or the
        rollback target); returns the versions removed."""
        records = self.list(tenant, app)
        removable = [r["version"] for r in records[: max(len(records) - self.keep, 0)] if r["version"] not in in_use]
        folder = self.folder(tenant, app)
        for version in removable:
            for suffix in (".json", ".zip"):
                with contextlib.suppress(FileNotFoundError):
                    (folder / f"{version}{suffix}").unlink()
        return removable
