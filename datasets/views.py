"""Pages of the datasets app: cohorts, recordings, epoch viewer, imports, images."""
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.files.storage import default_storage
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import condition, require_http_methods

from datasets.forms import ImportForm
from datasets.models import Cohort, Epoch, EpochImage, ImportJob, Recording
from datasets.services import imports, images
from datasets.services.plots import STAGE_COLOURS, hypnogram_svg

IMAGE_CACHE = "private, max-age=31536000, immutable"


@permission_required("datasets.view_cohort", raise_exception=True)
def cohort_list(request):
    cohorts = Cohort.objects.annotate(recording_count=Count("recordings")).order_by("name")
    return render(request, "datasets/cohort_list.html", {"cohorts": cohorts})


@permission_required("datasets.view_recording", raise_exception=True)
def recording_list(request, cohort_id=None):
    cohort = get_object_or_404(Cohort, pk=cohort_id) if cohort_id else None
    recordings = Recording.objects.select_related("cohort").order_by("cohort__name", "name")
    if cohort:
        recordings = recordings.filter(cohort=cohort)
    jobs = []
    if request.user.has_perm("datasets.view_importjob"):
        jobs = ImportJob.objects.exclude(state=ImportJob.SUCCEEDED)
        jobs = jobs.filter(cohort_name=cohort.name)[:20] if cohort else jobs[:20]
    return render(request, "datasets/recording_list.html", {"cohort": cohort, "recordings": recordings, "jobs": jobs})


@permission_required("datasets.view_recording", raise_exception=True)
def recording_detail(request, pk):
    recording = get_object_or_404(Recording.objects.select_related("cohort"), pk=pk)
    context = {"recording": recording, "jobs": recording.imports.all()[:5] if request.user.has_perm("datasets.view_importjob") else []}
    if request.user.has_perm("datasets.view_reference_stage"):
        stages = list(recording.epochs.values_list("stage", flat=True))
        context["hypnogram"] = _hypnogram(recording, stages)
        context["stage_counts"] = [(s, stages.count(s), STAGE_COLOURS[s]) for s in STAGE_COLOURS]
    return render(request, "datasets/recording_detail.html", context)


@permission_required("datasets.view_epoch", raise_exception=True)
def epoch_view(request, pk, index):
    recording = get_object_or_404(Recording.objects.select_related("cohort"), pk=pk)
    epoch = get_object_or_404(Epoch, recording=recording, index=index)
    context_on = request.GET.get("context", "1") == "1"
    guides_on = request.GET.get("guides", "1") == "1"
    can_see_reference = request.user.has_perm("datasets.view_reference_stage")
    context = {
        "recording": recording,
        "epoch": epoch,
        "viewer": images.viewer_image(epoch, context=context_on, guides=guides_on),
        "model": images.model_image(epoch),
        "context_on": context_on,
        "guides_on": guides_on,
        "previous": index - 1 if index > 0 else None,
        "next": index + 1 if index + 1 < recording.epoch_count else None,
        "query": f"?context={int(context_on)}&guides={int(guides_on)}",
        "clock": _clock(epoch.onset_s),
    }
    if can_see_reference:
        stages = list(recording.epochs.values_list("stage", flat=True))
        context["hypnogram"] = _hypnogram(recording, stages, height=110, marker=index)
    return render(request, "datasets/epoch.html", context)


def _hypnogram(recording, stages: list[str], **options) -> str:
    """The recording's hypnogram, each epoch linking to its viewer page."""
    link = reverse("datasets:epoch", args=[recording.pk, 0])[:-2] + "%d/"
    return hypnogram_svg(stages, link=link, **options)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


@permission_required("datasets.add_importjob", raise_exception=True)
@require_http_methods(["GET", "POST"])
def import_new(request):
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        job = imports.submit_upload(
            upload=data["file"], cohort=data["cohort"], hypnogram=data.get("hypnogram"),
            hypnogram_format=data["hypnogram_format"], channel_map=data["channel_map"], mains_hz=data["mains_hz"],
            trim_to_hypnogram=data["trim_to_hypnogram"], user=request.user,
        )
        messages.info(request, f"Import of {job.source_name} queued.")
        return redirect("datasets:import", pk=job.pk)
    return render(request, "datasets/import_new.html", {"form": form})


@permission_required("datasets.view_importjob", raise_exception=True)
def import_detail(request, pk):
    return render(request, "datasets/import_detail.html", {"job": get_object_or_404(ImportJob, pk=pk)})


def _image_etag(request, sha256):
    return f'"{sha256}"'


@permission_required("datasets.view_epochimage", raise_exception=True)
@condition(etag_func=_image_etag)
def image(request, sha256):
    """Serve a stored epoch image by content hash, with a long-lived cache and its ETag."""
    record = EpochImage.objects.filter(sha256=sha256).first()
    if record is None:
        raise Http404("no such image")
    with default_storage.open(record.storage_name, "rb") as fh:
        response = HttpResponse(fh.read(), content_type="image/png")
    response["Cache-Control"] = IMAGE_CACHE
    return response
