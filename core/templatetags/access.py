"""Template helpers of the access policy: {{ recording|recording_label:policy }}."""
from django import template

register = template.Library()


@register.filter
def recording_label(recording, policy) -> str:
    """The recording's name, or its pseudonym for users who may not see provenance."""
    return policy.recording_label(recording)
