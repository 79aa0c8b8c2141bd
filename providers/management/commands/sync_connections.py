from django.core.management.base import BaseCommand

from providers.bootstrap import sync_env_connections


class Command(BaseCommand):
    help = "Create or update provider connections from environment variables."

    def handle(self, *args: object, **options: object) -> None:
        changes = sync_env_connections()
        for change in changes:
            self.stdout.write(change)
        if not changes:
            self.stdout.write("No provider variables set; nothing to do.")
