from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_after_migrate(sender: AppConfig, **kwargs: object) -> None:
    from providers.bootstrap import sync_env_connections

    sync_env_connections()


class ProvidersConfig(AppConfig):
    name = "providers"
    verbose_name = "Model providers"

    def ready(self) -> None:
        # Deployments configured by environment get their connections on every migrate.
        post_migrate.connect(_sync_after_migrate, sender=self)
