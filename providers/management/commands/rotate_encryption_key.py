from django.core.management.base import BaseCommand
from django.db import transaction

from providers import crypto
from providers.models import ProviderConnection


class Command(BaseCommand):
    help = "Re-encrypt stored API keys with the first key in ENCRYPTION_KEYS."

    @transaction.atomic
    def handle(self, *args: object, **options: object) -> None:
        count = 0
        for connection in ProviderConnection.objects.select_for_update().exclude(
            api_key_encrypted=""
        ):
            connection.api_key_encrypted = crypto.rotate(connection.api_key_encrypted)
            connection.save(update_fields=["api_key_encrypted", "updated_at"])
            count += 1
        self.stdout.write(f"Re-encrypted {count} API key(s).")
