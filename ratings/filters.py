"""API filters of the ratings app (django-filter): a malformed value is a 400 naming the parameter."""
import django_filters

from core.filters import IdFilter
from ratings.models import Rating


class RatingFilter(django_filters.FilterSet):
    rater = IdFilter(field_name="rater_id", help_text="rater (user) id")
    item = IdFilter(field_name="item_id", help_text="rating item id")

    class Meta:
        model = Rating
        fields = ["rater", "item"]
