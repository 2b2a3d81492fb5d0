from django import forms
from django.conf import settings

from datasets.exceptions import InputError
from datasets.services.channels import parse_channel_map
from datasets.services.hypnograms import FORMATS


# What each file input takes: the browser's file picker offers these (`accept`), the help text names them.
PSG_TYPES = ".edf,.bdf"
HYPNOGRAM_TYPES = ".edf,.xml,.csv,.tsv,.txt"
MASSEX_TYPES = ".csv"


class ImportForm(forms.Form):
    file = forms.FileField(label="PSG file", widget=forms.ClearableFileInput(attrs={"accept": PSG_TYPES}),
                           help_text="EDF, EDF+ (.edf) or BDF (.bdf)")
    hypnogram = forms.FileField(required=False, widget=forms.ClearableFileInput(attrs={"accept": HYPNOGRAM_TYPES}),
                                help_text="Optional separate hypnogram: EDF+ annotations (.edf), NSRR XML (.xml), "
                                          "CSV/TSV (.csv, .tsv), one stage per line (.txt), MASS-EX CSV (.csv)")
    hypnogram_format = forms.ChoiceField(choices=[("", "Detect automatically")] + [(f, f) for f in FORMATS], required=False)
    cohort = forms.CharField(max_length=100, initial="default")
    subject_id = forms.CharField(
        max_length=64, required=False, label="Subject id",
        help_text="Optional pseudonymous id (letters, digits, '.', '_', '-'). Empty: the file name's MASS id, "
                  "else the cohort's next number. Never the patient's name: the file name stays restricted.",
    )
    channel_map = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3, "placeholder": '{"F4-M1": "EEG Fpz-Cz", "Chin EMG": ["EMG Chin1", "EMG Chin2"]}'}),
        help_text="Optional JSON: derivation → channel, or [positive, negative]. Overrides the built-in aliases.",
    )
    mains_hz = forms.FloatField(initial=settings.DEFAULT_MAINS_HZ, label="Mains frequency (Hz)", help_text="Notch filter: 50 Hz in MASS, 60 Hz in North America")
    trim_to_hypnogram = forms.BooleanField(required=False, help_text="Drop signal after the hypnogram's end (recorded on the recording)")
    massex = forms.FileField(required=False, label="MASS-EX CSV", widget=forms.ClearableFileInput(attrs={"accept": MASSEX_TYPES}),
                             help_text="Optional: rules and rationale onto the scored epochs of the recording's hypnogram (row N on the scored epoch of rank N; stages checked)")
    massex_contiguous = forms.BooleanField(required=False, label="MASS-EX epochs are contiguous", help_text="Only without a scored hypnogram: read the MASS-EX CSV as the hypnogram, N × 30 s from the start (recorded on the recording)")

    def clean_channel_map(self):
        text = self.cleaned_data["channel_map"].strip()
        if not text:
            return None
        try:
            return parse_channel_map(text, allow_file=False)
        except InputError as exc:
            raise forms.ValidationError(str(exc)) from None
