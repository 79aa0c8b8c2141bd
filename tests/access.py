"""Test helpers for who may use which model."""

from __future__ import annotations

from django.contrib.auth.models import Group

from providers import catalog
from providers.models import CatalogModel
from providers.registry import forget_models


def restrict_model(name: str, group: Group, kind: str = catalog.MINIMAX_OPENAI) -> CatalogModel:
    """Make the catalog model ``name`` for ``group`` only, and have this process forget
    the model list it loaded. The row is created if a transactional test flushed the
    seeded catalog."""
    row = CatalogModel.objects.filter(kind=kind, name=name).first()
    if row is None:
        spec = next(spec for spec in catalog.CATALOG[kind] if spec.name == name)
        row = CatalogModel.objects.create(**CatalogModel.fields_from_spec(kind, spec))
    row.groups.add(group)
    forget_models()
    return row
