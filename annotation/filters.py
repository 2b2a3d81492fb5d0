"""API filters of the annotation app (django-filter): a malformed value is a 400 naming the parameter."""
import django_filters

from annotation.models import Label, ScoringCampaign
from core.filters import IdFilter


class CampaignFilter(django_filters.FilterSet):
    class Meta:
        model = ScoringCampaign
        fields = ["unit", "sample"]


class LabelFilter(django_filters.FilterSet):
    recording = IdFilter(field_name="item__recording_id", help_text="recording id")
    rater = IdFilter(field_name="rater_id", help_text="rater (user) id")
    item = IdFilter(field_name="item_id", help_text="campaign item id")

    class Meta:
        model = Label
        fields = ["recording", "rater", "item"]
