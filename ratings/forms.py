"""The campaign form of the rating pages: the fields of ratings.services.campaigns.create_rating_campaign."""
from django import forms
from django.contrib.auth import get_user_model

from core.services.work_queue import MAX_KEY_DWELL_MS
from datasets.constants import MODEL_VIEW, SIGNAL_VIEW_CHOICES
from datasets.models import Cohort
from datasets.services.rationales import EXPERT_RATIONALE_SOURCES
from inference.models import ModelVersion

EXPERT_SOURCE_LABELS = {"massex": "MASS-EX reference rationales", "scoring": "Rationales written in scoring campaigns"}


def _raters():
    return get_user_model().objects.with_perm("ratings.rate_rationales", include_superusers=False).order_by("username")


def _expert_sources():
    return [(name, EXPERT_SOURCE_LABELS.get(name, name)) for name in sorted(EXPERT_RATIONALE_SOURCES)]


class RatingCampaignForm(forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    cohorts = forms.ModelMultipleChoiceField(Cohort.objects.order_by("name"), to_field_name="name",
                                             help_text="Rationales of the scored epochs of these cohorts")
    model_versions = forms.ModelMultipleChoiceField(ModelVersion.objects.order_by("name"), required=False,
                                                    to_field_name="name", help_text="Model rationales to rate")
    expert_sources = forms.MultipleChoiceField(choices=_expert_sources, required=False,
                                               widget=forms.CheckboxSelectMultiple,
                                               help_text="Expert rationales to rate beside them (origin stays hidden)")
    sample_size = forms.IntegerField(required=False, min_value=1,
                                     help_text="Items to draw, stratified by stage and correctness; empty: all")
    seed = forms.IntegerField(min_value=0, initial=0, help_text="The same seed draws the same items")
    item_list = forms.FileField(required=False, help_text="Or a CSV of recording,epoch[,source] naming the items")
    raters = forms.ModelMultipleChoiceField(queryset=None, to_field_name="username")
    overlap = forms.IntegerField(min_value=1, initial=2, help_text="Distinct raters per item (k)")
    reservation_timeout_s = forms.IntegerField(min_value=10, initial=900, label="Reservation timeout (s)")
    fast_floor_s = forms.FloatField(min_value=0, initial=5.0, label="Fast floor (s)",
                                    help_text="Ratings given faster are flagged, never blocked")
    key_dwell_ms = forms.IntegerField(min_value=0, max_value=MAX_KEY_DWELL_MS, initial=300, label="Key dwell (ms)",
                                      help_text="Score keys count once an item has been shown this long")
    signal_view = forms.TypedChoiceField(
        choices=SIGNAL_VIEW_CHOICES, initial=MODEL_VIEW, empty_value=MODEL_VIEW, required=False, label="Signal view",
        help_text="The view raters start with: the model's 100-Hz preparation, or clinical")
    signal_view_switchable = forms.BooleanField(required=False, initial=True, label="Raters may switch the view")
    show_evidence = forms.BooleanField(
        required=False, initial=False, label="Show the evidence check",
        help_text="Beside each rationale, whatever its origin: each cited rule checked against the measured signal")
    rubric = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 6}),
                             help_text="Markdown like ratings/default_rubric.md; empty: the default rubric")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["raters"].queryset = _raters()

    def clean_item_list(self):
        upload = self.cleaned_data["item_list"]
        if not upload:
            return None
        try:
            return upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise forms.ValidationError("the item list must be a UTF-8 CSV file") from None
