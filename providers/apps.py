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

        from django.core.signals import setting_changed
        from django.db.models.signals import m2m_changed, post_delete, post_save

        from providers.models import CatalogModel, ProviderConnection
        from providers.registry import forget_models

        for model in (ProviderConnection, CatalogModel):
            post_save.connect(forget_models, sender=model, dispatch_uid=f"forget-{model.__name__}")
            post_delete.connect(
                forget_models, sender=model, dispatch_uid=f"forget-del-{model.__name__}"
            )
            # Who may use it: its groups.
            m2m_changed.connect(
                forget_models,
                sender=model.groups.through,
                dispatch_uid=f"forget-groups-{model.__name__}",
            )
        setting_changed.connect(forget_models, dispatch_uid="forget-models-settings")
