"""Catalog facts other apps' pages show without importing the gateway: the call page's price, and for
the staff page the matrix cells on deprecated or retired models and the models flagged for review."""

from django import template

from gateway.catalog import catalog_matrix_warnings, catalog_models_get, catalog_review_list

register = template.Library()

PER_MILLION = 1_000_000


@register.simple_tag
def catalog_price(model_id: str) -> dict | None:
    """{"prompt_per_m", "completion_per_m"} in USD per 1M tokens as the catalog lists them now;
    None for a model the catalog does not know."""
    if not model_id:
        return None
    catalog = catalog_models_get(model_ids=[model_id]).get(model_id)
    if catalog is None:
        return None
    return {
        "prompt_per_m": f"{(catalog.prompt_price * PER_MILLION).normalize():f}",
        "completion_per_m": f"{(catalog.completion_price * PER_MILLION).normalize():f}",
    }


@register.simple_tag
def matrix_lifecycle_warnings() -> list[dict]:
    """Routing matrix cells on a deprecated or retired model (see `catalog_matrix_warnings`)."""
    return catalog_matrix_warnings()


@register.simple_tag
def models_flagged_for_review() -> list:
    """Catalog models an upstream said it does not serve, newest flag first."""
    return catalog_review_list()
