"""Pages of the datasets app: cohorts, recordings, epoch viewer, imports, images (core access policy)."""
import json

from django.contrib import messages
from django.core.exceptions import BadRequest
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.http import urlencode
from django.views.decorators.http import condition
from django.views.generic import DetailView, FormView, ListView, View

from core.access import PolicyViewMixin
from datasets.exceptions import InputError
from datasets.forms import ImportForm
from datasets.models import Epoch, EpochImage, ImportJob, Recording
from datasets.services import images, imports, recordings
from datasets.services.hypnogram_export import export_choices, export_hypnogram
from datasets.services.plots import STAGE_COLOURS, hypnogram_svg
from datasets.services.signals import aasm_filters

IMAGE_CACHE = "private, max-age=31536000, immutable"


class CohortListView(PolicyViewMixin, ListView):
    permission_required = "datasets.view_cohort"
    template_name = "datasets/cohort_list.html"
    context_object_name = "cohorts"

    def get_queryset(self):
        return recordings.visible_cohorts(self.request.user)


class RecordingListView(PolicyViewMixin, ListView):
    permission_required = "datasets.view_recording"
    recording_path = ""
    template_name = "datasets/recording_list.html"
    context_object_name = "recordings"
    queryset = Recording.objects.select_related("cohort").order_by("cohort__name", "name")

    def get_queryset(self):
        self.cohort = (get_object_or_404(recordings.visible_cohorts(self.request.user), pk=self.kwargs["cohort_id"])
                       if "cohort_id" in self.kwargs else None)
        queryset = super().get_queryset()
        return queryset.filter(cohort=self.cohort) if self.cohort else queryset

    def get_context_data(self, **kwargs):
        jobs = []
        if self.request.user.has_perm("datasets.view_importjob"):
            jobs = ImportJob.objects.exclude(state=ImportJob.SUCCEEDED).filter(dismissed_at__isnull=True)
            jobs = jobs.filter(cohort_name=self.cohort.name)[:20] if self.cohort else jobs[:20]
        return super().get_context_data(cohort=self.cohort, jobs=jobs, **kwargs)


def _hypnogram(recording, stages: list[str], **options) -> str:
    """The recording's hypnogram, each epoch linking to its viewer page."""
    link = reverse("datasets:epoch", args=[recording.pk, 0])[:-2] + "%d/"
    return hypnogram_svg(stages, link=link, **options)


class RecordingDetailView(PolicyViewMixin, DetailView):
    permission_required = "datasets.view_recording"
    recording_path = ""
    template_name = "datasets/recording_detail.html"
    context_object_name = "recording"
    queryset = Recording.objects.select_related("cohort")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        recording = self.object
        context["jobs"] = recording.imports.all()[:5] if self.request.user.has_perm("datasets.view_importjob") else []
        if self.policy.can_see_reference:
            stages = list(recording.epochs.values_list("stage", flat=True))
            context["hypnogram"] = _hypnogram(recording, stages)
            context["stage_counts"] = [(s, stages.count(s), STAGE_COLOURS[s]) for s in STAGE_COLOURS]
        download = reverse("datasets:recording-hypnogram", args=[recording.pk])
        context["hypnogram_exports"] = [
            (label, *(f"{download}?{urlencode({**options, 'output': output})}" for output in ("edf", "xml")))
            for label, options in export_choices(recording, self.request.user)]
        return context


class RecordingHypnogramView(PolicyViewMixin, View):
    """A hypnogram download (?source=reference|consensus|rater, campaign=ID, rater=ID, output=edf|xml): what the
    source lets the user export (datasets.services.hypnogram_export)."""

    permission_required = "datasets.view_recording"

    def get(self, request, pk):
        recording = get_object_or_404(self.policy.reachable(Recording.objects.all()), pk=pk)
        try:
            export = export_hypnogram(recording, request.user, request.GET)
        except InputError as exc:
            raise BadRequest(str(exc)) from None
        return export.response()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class EpochView(PolicyViewMixin, DetailView):
    permission_required = "datasets.view_epoch"
    recording_path = "recording"
    template_name = "datasets/epoch.html"
    context_object_name = "epoch"
    queryset = Epoch.objects.select_related("recording__cohort")

    def get_object(self, queryset=None):
        return get_object_or_404(self.get_queryset(), recording_id=self.kwargs["pk"], index=self.kwargs["index"])

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        epoch, index = self.object, self.object.index
        recording = epoch.recording
        context_on = self.request.GET.get("context", "1") == "1"
        guides_on = self.request.GET.get("guides", "1") == "1"
        context.update(
            recording=recording,
            viewer=images.viewer_image(epoch, context=context_on, guides=guides_on),
            model=images.model_image(epoch),
            context_on=context_on,
            guides_on=guides_on,
            previous=index - 1 if index > 0 else None,
            next=index + 1 if index + 1 < recording.epoch_count else None,
            query=f"?context={int(context_on)}&guides={int(guides_on)}",
            clock=_clock(epoch.onset_s),
        )
        if self.policy.can_see_reference:
            stages = list(recording.epochs.values_list("stage", flat=True))
            context["hypnogram"] = _hypnogram(recording, stages, height=110, marker=index)
        return context


class ImportNewView(PolicyViewMixin, FormView):
    permission_required = "datasets.add_importjob"
    template_name = "datasets/import_new.html"
    form_class = ImportForm

    def get_initial(self):
        """?cohort= and ?subject_id= fill the form (a failed import's page links here to import the file again)."""
        return {**super().get_initial(), **{k: self.request.GET[k] for k in ("cohort", "subject_id") if self.request.GET.get(k)}}

    def form_valid(self, form):
        data = form.cleaned_data
        try:
            job = imports.submit_upload(
                upload=data["file"], cohort=data["cohort"], hypnogram=data.get("hypnogram"),
                hypnogram_format=data["hypnogram_format"], channel_map=data["channel_map"], mains_hz=data["mains_hz"],
                trim_to_hypnogram=data["trim_to_hypnogram"], massex=data.get("massex"),
                massex_contiguous=data["massex_contiguous"], subject_id=data["subject_id"], user=self.request.user,
            )
        except InputError as exc:
            form.add_error(None, str(exc))
            return self.form_invalid(form)
        messages.info(self.request, f"Import of {job.source_name} queued.")
        return redirect("datasets:import", pk=job.pk)


class ImportDetailView(PolicyViewMixin, DetailView):
    permission_required = "datasets.view_importjob"
    template_name = "datasets/import_detail.html"
    context_object_name = "job"
    queryset = ImportJob.objects.select_related("recording")

    def get_context_data(self, **kwargs):
        job = self.object
        again = f"{reverse('datasets:import-new')}?{urlencode({'cohort': job.cohort_name, 'subject_id': job.subject_id})}"
        return super().get_context_data(retry_refusal=imports.retry_refusal(job), import_again=again, **kwargs)


class ImportActionView(PolicyViewMixin, View):
    """POST: retry or dismiss a failed import from its page (datasets.services.imports), then back to the page."""

    permission_required = "datasets.change_importjob"
    action = ""  # "retry" or "dismiss"

    def post(self, request, pk):
        job = get_object_or_404(ImportJob, pk=pk)
        try:
            getattr(imports, self.action)(job, user=request.user)
        except InputError as exc:
            messages.error(request, str(exc))
        else:
            messages.info(request, f"Import of {job.source_name} queued again." if self.action == "retry" else
                          f"Import of {job.source_name} dismissed: left out of the job lists.")
        return redirect("datasets:import", pk=job.pk)


class EpochSignalsView(PolicyViewMixin, View):
    """The prepared signals of an epoch (and its neighbours with ?context=1) for the browser's signal view:
    int16 little-endian, derivation-major; the metadata (derivations, scale, indices) in X-Signal-Meta."""

    permission_required = "datasets.view_epoch"

    def get(self, request, pk, index):
        epochs = self.policy.reachable(Epoch.objects.select_related("recording"), "recording")
        epoch = get_object_or_404(epochs, recording_id=pk, index=index)
        context = request.GET.get("context", "1") == "1"
        file_hash = self.signal_file(epoch.recording).rsplit("/", 1)[-1][:16]
        etag = f'"{file_hash}-{index}-{int(context)}{self.variant(epoch)}"'
        if request.headers.get("If-None-Match") == etag:
            response = HttpResponse(status=304)
        else:
            body, meta = self.encode(epoch, context)
            response = HttpResponse(body, content_type="application/octet-stream")
            response["X-Signal-Meta"] = json.dumps(meta)
        response["ETag"] = etag
        response["Cache-Control"] = "private, max-age=300"
        return response

    def signal_file(self, recording) -> str:
        return recording.signal_file

    def variant(self, epoch) -> str:
        return ""

    def encode(self, epoch, context):
        return images.epoch_signals(epoch, context=context)


FILTER_PARAMETERS = (("high_pass", "hp"), ("low_pass", "lp"), ("notch", "notch"))


def clinical_filters(query, mains_hz: float) -> dict[str, dict[str, float]]:
    """The AASM filters per channel kind, with what the query sets (hp_eeg, lp_eeg, notch_eeg, ... in Hz; 0: off)."""
    filters = aasm_filters(mains_hz)
    for kind, settings in filters.items():
        for key, prefix in FILTER_PARAMETERS:
            name = f"{prefix}_{kind.lower()}"
            if name in query:
                try:
                    settings[key] = float(query[name])
                except ValueError:
                    raise BadRequest(f"{name}: not a number") from None
                if not 0 <= settings[key] <= 1000:
                    raise BadRequest(f"{name}: from 0 to 1000 Hz")
        if 0 < settings["low_pass"] <= settings["high_pass"]:
            raise BadRequest(f"lp_{kind.lower()} must lie above hp_{kind.lower()}")
    return filters


class EpochClinicalSignalsView(EpochSignalsView):
    """The clinical view of an epoch, encoded as EpochSignalsView: the derivations at the recording's own rate,
    filtered per channel kind (clinical_filters)."""

    def signal_file(self, recording) -> str:
        if not recording.native_signal_file:
            raise Http404("this recording was imported without its native-rate signal, which the clinical view needs")
        return recording.native_signal_file

    def variant(self, epoch) -> str:
        self.filters = clinical_filters(self.request.GET, epoch.recording.mains_hz)
        return "-" + "-".join(f"{value:g}" for settings in self.filters.values() for value in settings.values())

    def encode(self, epoch, context):
        return images.clinical_signals(epoch, self.filters, context=context)


class OriginalPsgView(PolicyViewMixin, View):
    """The original PSG file, stored apart when KEEP_ORIGINAL_PSG is on: admins only (it identifies the subject)."""

    permission_required = "datasets.view_recording"
    capability = "can_download_original_psg"

    def get(self, request, pk):
        recording = get_object_or_404(self.policy.reachable(Recording.objects.exclude(original_file="")), pk=pk)
        return FileResponse(default_storage.open(recording.original_file, "rb"), as_attachment=True,
                            filename=recording.source_filename, content_type="application/octet-stream")


def _image_etag(request, sha256):
    return f'"{sha256}"'


@method_decorator(condition(etag_func=_image_etag), name="get")
class ImageView(PolicyViewMixin, View):
    """A stored epoch image by content hash, for users who reach one of its recordings; long-lived cache, ETag."""

    permission_required = "datasets.view_epochimage"

    def get(self, request, sha256):
        records = self.policy.reachable(EpochImage.objects.filter(sha256=sha256), "epoch__recording")
        record = records.first()
        if record is None:
            raise Http404("no such image")
        with default_storage.open(record.storage_name, "rb") as fh:
            response = HttpResponse(fh.read(), content_type="image/png")
        response["Cache-Control"] = IMAGE_CACHE
        return response
