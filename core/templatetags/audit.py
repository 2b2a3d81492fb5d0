"""Template helpers of the audit page: a recorded value as short readable text."""
import json

from django import template

register = template.Library()


@register.filter
def recorded_value(value) -> str:
    """A recorded field value: text as is, none as an em dash, anything else as compact JSON."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


@register.filter
def history_url(instance) -> str:
    """The audit page listing this object's change records."""
    from django.urls import reverse

    from core.services.audit import history_query

    return f"{reverse('core:audit')}?{history_query(instance)}"
