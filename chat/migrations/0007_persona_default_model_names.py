from django.db import migrations


def names_not_keys(apps, schema_editor):
    """Persona default models are catalog model names ("M2-her"), not option keys."""
    PersonaPreset = apps.get_model("chat", "PersonaPreset")
    for persona in PersonaPreset.objects.exclude(default_model=""):
        name = persona.default_model.split(":", 1)[-1]
        if name != persona.default_model:
            PersonaPreset.objects.filter(pk=persona.pk).update(default_model=name)


class Migration(migrations.Migration):
    dependencies = [("chat", "0006_conversation_auto_title")]

    operations = [migrations.RunPython(names_not_keys, migrations.RunPython.noop, elidable=True)]
