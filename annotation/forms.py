"""The campaign form of the scoring pages: the fields of annotation.services.campaigns.create_campaign."""
from django import forms
from django.contrib.auth import get_user_model

from annotation.models import ScoringCampaign
from core.services.work_queue import MAX_KEY_DWELL_MS
from datasets.constants import CLINICAL_VIEW, SIGNAL_VIEW_CHOICES
from datasets.models import Cohort, Recording
from inference.models import ModelVersion


def _raters():
    return get_user_model().objects.with_perm("annotation.score_epochs", include_superusers=False).order_by("username")


def _adjudicator_choices():
    """Raters and curators (who adjudicate every campaign anyway, but may be named as its adjudicators)."""
    users = get_user_model().objects
    return (users.with_perm("annotation.score_epochs", include_superusers=False)
            | users.with_perm("annotation.adjudicate", include_superusers=False)).distinct().order_by("username")


class CampaignForm(forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    cohort = forms.ModelChoiceField(Cohort.objects.order_by("name"), required=False, to_field_name="name",
                                    help_text="Every recording of the cohort; add single recordings below")
    recordings = forms.ModelMultipleChoiceField(Recording.objects.order_by("pk"), required=False)
    sample = forms.ChoiceField(choices=ScoringCampaign.SAMPLE_CHOICES, initial=ScoringCampaign.ALL)
    sample_size = forms.IntegerField(required=False, min_value=1, help_text="Epochs to draw; empty: all of the sample")
    seed = forms.IntegerField(min_value=0, initial=0, help_text="The same seed draws the same epochs")
    disagreement_model = forms.ModelChoiceField(ModelVersion.objects.order_by("name"), required=False,
                                                to_field_name="name", help_text="For the 'disagreement' sample")
    overlap = forms.IntegerField(min_value=1, initial=2, help_text="Distinct raters per epoch (k)")
    raters = forms.ModelMultipleChoiceField(queryset=None, to_field_name="username")
    adjudicators = forms.ModelMultipleChoiceField(queryset=None, to_field_name="username", required=False,
                                                  help_text="Raters or curators who resolve the campaign's disagreements")
    unit = forms.ChoiceField(choices=ScoringCampaign.UNIT_CHOICES, initial=ScoringCampaign.EPOCH)
    reservation_timeout_s = forms.IntegerField(min_value=10, initial=900, label="Reservation timeout (s)")
    show_reference = forms.BooleanField(required=False, help_text="Raters see the reference stage")
    show_model_outputs = forms.BooleanField(required=False, help_text="Raters see model outputs (names pseudonymous)")
    show_other_labels = forms.BooleanField(required=False, help_text="Raters see other raters' labels")
    rescore_share = forms.FloatField(min_value=0, max_value=1, initial=0,
                                     help_text="Share of a rater's epochs served again, unannounced (intra-rater)")
    rationale_mode = forms.BooleanField(required=False, help_text="Raters also pick rule ids and write a rationale")
    key_dwell_ms = forms.IntegerField(required=False, min_value=0, max_value=MAX_KEY_DWELL_MS, label="Key dwell (ms)",
                                      initial=ScoringCampaign._meta.get_field("key_dwell_ms").default,
                                      help_text="Stage keys count once an epoch has been shown this long")
    signal_view = forms.TypedChoiceField(
        choices=SIGNAL_VIEW_CHOICES, initial=CLINICAL_VIEW, empty_value=CLINICAL_VIEW, required=False, label="Signal view",
        help_text="The view raters start with: the model's 100-Hz preparation, or clinical")
    signal_view_switchable = forms.BooleanField(required=False, initial=True, label="Raters may switch the view")
    review_model = forms.ModelChoiceField(
        ModelVersion.objects.order_by("name"), required=False, to_field_name="name", label="Review model",
        help_text="Review mode: raters accept (Enter) or correct this model's stages, least confident epochs first")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["raters"].queryset = _raters()
        self.fields["adjudicators"].queryset = _adjudicator_choices()

    def clean_key_dwell_ms(self):  # left empty: the campaign's default
        value = self.cleaned_data["key_dwell_ms"]
        return self.fields["key_dwell_ms"].initial if value is None else value
