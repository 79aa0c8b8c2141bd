from django.db import migrations


def seed(apps, schema_editor):
    from providers.catalog import CATALOG
    from providers.models import CatalogModel as Current

    CatalogModel = apps.get_model("providers", "CatalogModel")
    for kind, specs in CATALOG.items():
        for spec in specs:
            fields = Current.fields_from_spec(kind, spec)
            CatalogModel.objects.get_or_create(kind=kind, name=spec.name, defaults=fields)


def unseed(apps, schema_editor):
    apps.get_model("providers", "CatalogModel").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("providers", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
