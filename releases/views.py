"""Pages of releases: the list, a release with its files and build progress, downloads (permission-checked)."""
from django.shortcuts import get_object_or_404, redirect
from django.views.generic import DetailView, FormView, ListView, View

from core.access import PolicyViewMixin
from core.exceptions import InputError
from releases.forms import ReleaseForm
from releases.models import Release
from releases.services.build import create_release
from releases.services.downloads import file_response
from releases.services.preview import preview_release
from releases.services.provenance import stored as stored_provenance


class ReleaseListView(PolicyViewMixin, ListView):
    permission_required = "releases.view_release"
    template_name = "releases/release_list.html"
    context_object_name = "releases"
    queryset = Release.objects.prefetch_related("cohorts").order_by("name", "-created_at")


class ReleaseNewView(PolicyViewMixin, FormView):
    """The release builder (curators): the release's contents, then what they change against the previous version,
    then the build (the same service as the API and `manage.py export_release`), followed on the release's page."""

    permission_required = "releases.add_release"
    template_name = "releases/release_new.html"
    form_class = ReleaseForm

    def form_valid(self, form):
        previewed = self.request.POST.get("previewed") == form.fingerprint()
        if "build" in self.request.POST and previewed:
            fields = dict(form.cleaned_data)
            try:
                release = create_release(fields.pop("name"), fields.pop("version"), user=self.request.user, **fields)
            except InputError as exc:
                form.add_error(None, str(exc))
                return self.form_invalid(form)
            return redirect("releases:release-detail", release.pk)
        try:
            preview = preview_release(**form.choices())
        except InputError as exc:
            form.add_error(None, str(exc))
            return self.form_invalid(form)
        return self.render_to_response(self.get_context_data(
            form=form, preview=preview, fingerprint=form.fingerprint(), changed="build" in self.request.POST))


class ReleaseDetailView(PolicyViewMixin, DetailView):
    permission_required = "releases.view_release"
    template_name = "releases/release_detail.html"
    context_object_name = "release"
    queryset = Release.objects.prefetch_related("cohorts", "scoring_campaigns", "rating_campaigns", "model_versions")

    def get_context_data(self, **kwargs):
        release = self.object
        from django.urls import reverse

        provenance = stored_provenance(release)
        return super().get_context_data(job_url=reverse("release-detail", args=[release.pk]),
                                        archives=release.files.filter(archive=True),
                                        files=release.files.filter(archive=False), provenance=provenance,
                                        provenance_campaigns=_campaign_rows(provenance), **kwargs)


def _campaign_rows(provenance) -> list[dict]:
    """The provenance's answer counts and rubric versions, one row per campaign (campaign names are dict keys,
    which a template cannot index safely)."""
    if provenance is None:
        return []
    answers, rubrics = provenance["answers"], provenance["rubrics"]
    return ([{"kind": "scoring", "name": name, "answers": counts["labels"], "adjudications": counts["adjudications"]}
             for name, counts in sorted(answers["scoring"].items())]
            + [{"kind": "rating", "name": name, "answers": counts["ratings"], "rubrics": rubrics.get(name, [])}
               for name, counts in sorted(answers["rating"].items())])


class ReleaseFileView(PolicyViewMixin, View):
    """One file of a built release (or one of its archives), streamed from storage."""

    permission_required = "releases.download_release"

    def get(self, request, pk, path):
        return file_response(get_object_or_404(Release, pk=pk), path)
