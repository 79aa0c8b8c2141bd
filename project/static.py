"""Static files: WhiteNoise serves them from daphne itself (no separate web server
needed), compressed, with content-hashed names cached for a year."""

from __future__ import annotations

from django.contrib.staticfiles.storage import StaticFilesStorage
from whitenoise.storage import CompressedManifestStaticFilesStorage


class CompressedStaticFiles(CompressedManifestStaticFilesStorage):
    """Hashed names whenever `collectstatic` has written the manifest, in DEBUG too
    (Django's own storage uses plain names in DEBUG); plain names, served from the
    source folders, before it has."""

    manifest_strict = False

    def url(self, name: str | None, force: bool = False) -> str:
        if not self.hashed_files:  # before collectstatic: plain names, from the finders
            return StaticFilesStorage.url(self, name)  # type: ignore[no-any-return]
        return super().url(name, force=True)  # type: ignore[no-any-return]
