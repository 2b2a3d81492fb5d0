"""Pages of the inference app: runs (start, follow, cancel), evaluation report."""
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from datasets.constants import STAGES
from inference.forms import EvaluationForm, RunForm
from inference.models import InferenceJob, ModelVersion
from inference.services import jobs
from inference.services.evaluation import EvaluationError, compare, table_rows
from inference.services.plots import confusion_svg


@permission_required("inference.view_inferencejob", raise_exception=True)
def job_list(request):
    form = RunForm(request.POST or None) if request.user.has_perm("inference.add_inferencejob") else None
    if request.method == "POST":
        if form is None:
            raise PermissionDenied("starting a run needs the curator role")
        if form.is_valid():
            data = form.cleaned_data
            job = jobs.start_job(data["model_version"], cohort=data["cohort"], recording=data["recording"], user=request.user)
            return redirect("inference:job", pk=job.pk)
    job_rows = [(job, jobs.progress(job)) for job in InferenceJob.objects.select_related("model_version", "cohort", "recording")[:50]]
    return render(request, "inference/job_list.html", {"form": form, "jobs": job_rows, "versions": ModelVersion.objects.all()})


@permission_required("inference.view_inferencejob", raise_exception=True)
def job_detail(request, pk):
    job = get_object_or_404(InferenceJob.objects.select_related("model_version", "cohort", "recording"), pk=pk)
    failures = job.predictions.filter(status="failed").select_related("epoch__recording")[:20]
    return render(request, "inference/job_detail.html", {"job": job, "progress": jobs.progress(job), "failures": failures})


@permission_required("inference.change_inferencejob", raise_exception=True)
@require_POST
def job_cancel(request, pk):
    jobs.cancel_job(get_object_or_404(InferenceJob, pk=pk))
    return redirect("inference:job", pk=pk)


@permission_required("inference.view_prediction", raise_exception=True)
def evaluation(request):
    form = EvaluationForm(request.GET or None)
    context = {"form": form, "stages": STAGES}
    if form.is_valid():
        data = form.cleaned_data
        try:
            result = compare(list(data["model"]), data["cohort"], reference=data["reference"])
        except EvaluationError as exc:
            form.add_error(None, str(exc))
        else:
            query = request.GET.urlencode()
            context.update(
                result=result,
                rows=table_rows(result["models"]),
                plots=[(m["model"], confusion_svg(m["pooled"]["confusion"], STAGES)) for m in result["models"]],
                json_url=f"{reverse('evaluation')}?{query}",
                csv_url=f"{reverse('evaluation')}?{query}&output=csv",
            )
    return render(request, "inference/evaluation.html", context)
