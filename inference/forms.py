from django import forms

from datasets.models import Cohort, Recording
from inference.models import ModelVersion
from inference.services.evaluation import REFERENCES


class RunForm(forms.Form):
    model_version = forms.ModelChoiceField(queryset=ModelVersion.objects.all())
    cohort = forms.ModelChoiceField(queryset=Cohort.objects.all(), required=False)
    recording = forms.ModelChoiceField(queryset=Recording.objects.select_related("cohort"), required=False)

    def clean(self):
        data = super().clean()
        if bool(data.get("cohort")) == bool(data.get("recording")):
            raise forms.ValidationError("Choose a cohort or a recording (one of them).")
        return data


class EvaluationForm(forms.Form):
    cohort = forms.ModelChoiceField(queryset=Cohort.objects.all())
    model = forms.ModelMultipleChoiceField(queryset=ModelVersion.objects.all(), to_field_name="name",
                                           widget=forms.CheckboxSelectMultiple)
    reference = forms.ChoiceField(choices=[(r, r) for r in REFERENCES], initial="hypnogram")
