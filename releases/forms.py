"""The release builder's form: the fields of releases.services.build.create_release."""
import hashlib
import json

from django import forms

from annotation.models import ScoringCampaign
from datasets.models import Cohort
from inference.models import ModelVersion
from ratings.models import RatingCampaign
from releases.models import Release

CHOICE_FIELDS = ("name", "version", "cohorts", "stage_source", "scoring_campaigns", "rating_campaigns", "model_versions")


class ReleaseForm(forms.Form):
    name = forms.SlugField(max_length=100, initial="mass-ex", help_text="Dataset name: letters, digits, - and _")
    version = forms.CharField(max_length=40, help_text="Semantic version, e.g. 1.0.0; a new version is a new release")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    cohorts = forms.ModelMultipleChoiceField(Cohort.objects.order_by("name"), to_field_name="name")
    stage_source = forms.ChoiceField(choices=Release.STAGE_SOURCES, initial=Release.REFERENCE)
    scoring_campaigns = forms.ModelMultipleChoiceField(
        ScoringCampaign.objects.order_by("name"), to_field_name="name", required=False,
        help_text="Their labels and consensus; needed by the consensus and adjudicated stage sources")
    rating_campaigns = forms.ModelMultipleChoiceField(RatingCampaign.objects.order_by("name"), to_field_name="name",
                                                      required=False, help_text="Their ratings, notes and corrections")
    model_versions = forms.ModelMultipleChoiceField(ModelVersion.objects.order_by("name"), to_field_name="name",
                                                    required=False, help_text="Their predictions")
    license_id = forms.CharField(max_length=64, initial="cc-by-nc-4.0", label="Licence id",
                                 help_text="SPDX-style id for the dataset card")
    license_text = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), label="Licence text")
    include_images = forms.BooleanField(required=False, help_text="Model images as images/<subject>/<N>_<Stage>.png")

    def choices(self) -> dict:
        """The cleaned fields that decide the release's contents (what the preview compares)."""
        return {field: self.cleaned_data[field] for field in CHOICE_FIELDS}

    def fingerprint(self) -> str:
        """The choices as one hash: a build must be of the choices previewed."""
        values = {k: sorted(row.pk for row in v) if hasattr(v, "model") else v for k, v in self.choices().items()}
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]
