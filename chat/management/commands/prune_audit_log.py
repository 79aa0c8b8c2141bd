"""Delete audit log entries older than AUDIT_RETENTION_DAYS (run it daily, e.g. from a
systemd timer or cron)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from chat import audit


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = audit.prune()
        self.stdout.write(
            f"Deleted {deleted} audit entries older than {settings.AUDIT_RETENTION_DAYS} days."
        )
