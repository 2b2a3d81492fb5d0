"""Pages of the inference app: runs (start, follow, cancel), evaluation report (core access policy)."""
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.generic import DetailView, TemplateView, View

from core.access import PolicyViewMixin
from datasets.constants import STAGES
from inference.forms import EvaluationForm, RunForm
from inference.models import InferenceJob, ModelVersion
from inference.services import jobs
from inference.services.evaluation import EvaluationError, compare, table_rows
from inference.services.plots import confusion_svg


class JobListView(PolicyViewMixin, TemplateView):
    permission_required = "inference.view_inferencejob"
    template_name = "inference/job_list.html"

    def form(self):
        if not self.request.user.has_perm("inference.add_inferencejob"):
            return None
        return RunForm(self.request.POST or None)

    def post(self, request):
        form = self.form()
        if form is None:
            raise PermissionDenied("starting a run needs the curator role")
        if form.is_valid():
            data = form.cleaned_data
            job = jobs.start_job(data["model_version"], cohort=data["cohort"], recording=data["recording"], user=request.user)
            return redirect("inference:job", pk=job.pk)
        return self.render_to_response(self.get_context_data(form=form))

    def get_context_data(self, **kwargs):
        kwargs.setdefault("form", self.form())
        rows = InferenceJob.objects.select_related("model_version", "cohort", "recording__cohort")[:50]
        return super().get_context_data(jobs=[(job, jobs.progress(job)) for job in rows],
                                        versions=ModelVersion.objects.all(),
                                        can_evaluate=self.policy.can_evaluate,  # what the evaluation page requires
                                        **kwargs)


class JobDetailView(PolicyViewMixin, DetailView):
    permission_required = "inference.view_inferencejob"
    template_name = "inference/job_detail.html"
    context_object_name = "job"
    queryset = InferenceJob.objects.select_related("model_version", "cohort", "recording__cohort")

    def get_context_data(self, **kwargs):
        job = self.object
        failures = job.predictions.filter(status="failed").select_related("epoch__recording")[:20]
        progress = jobs.progress(job)
        stats = [("Parse failures", "progress.parse_failures", progress["parse_failures"]),
                 ("Skipped (no context)", "progress.skipped", progress["skipped"])]
        return super().get_context_data(progress=progress, failures=failures, stats=stats, **kwargs)


class JobCancelView(PolicyViewMixin, View):
    permission_required = "inference.change_inferencejob"

    def post(self, request, pk):
        jobs.cancel_job(get_object_or_404(InferenceJob, pk=pk))
        return redirect("inference:job", pk=pk)


class EvaluationPageView(PolicyViewMixin, TemplateView):
    """Evaluation shows reference-derived confusion matrices beside model outputs: it needs both."""

    permission_required = "inference.view_prediction"
    capability = "can_evaluate"
    template_name = "inference/evaluation.html"

    def get_context_data(self, **kwargs):
        form = EvaluationForm(self.request.GET or None)
        context = super().get_context_data(form=form, stages=STAGES, **kwargs)
        if form.is_valid():
            data = form.cleaned_data
            try:
                result = compare(list(data["model"]), data["cohort"], reference=data["reference"])
            except EvaluationError as exc:
                form.add_error(None, str(exc))
            else:
                query = self.request.GET.urlencode()
                context.update(
                    result=result,
                    versions=list(data["model"]),
                    rows=table_rows(result["models"]),
                    plots=[(m["model"], confusion_svg(m["pooled"]["confusion"], STAGES)) for m in result["models"]],
                    json_url=f"{reverse('evaluation')}?{query}",
                    csv_url=f"{reverse('evaluation')}?{query}&output=csv",
                )
        return context
