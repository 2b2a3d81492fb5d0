"""Pages of core: pieces shared by the campaign apps (scoring, rating), the audit trail, accounts and roles."""
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.http import Http404
from django.shortcuts import redirect
from django.views.generic import DetailView, ListView, TemplateView, View

from core.access import PolicyViewMixin
from core.exceptions import InputError
from core.filters import ChangeRecordFilter
from core.models import ChangeRecord
from core.roles import RATER, ROLES, user_roles
from core.services import audit, docs, users
from core.services.work import work_of


class CampaignListView(PolicyViewMixin, ListView):
    """The campaigns the user reaches, newest first; subclasses name the permission, template and service."""

    context_object_name = "campaigns"
    visible_campaigns = None  # staticmethod(service): the campaigns a user may reach

    def get_queryset(self):
        return self.visible_campaigns(self.request.user).order_by("-created_at").prefetch_related("raters")


class LandingView(PolicyViewMixin, View):
    """Where a sign-in lands: My work for raters and for anyone with work assigned, the cohorts otherwise."""

    permission_required = ()  # every signed-in user

    def get(self, request):
        lands_on_work = RATER in user_roles(request.user) or work_of(request.user)
        return redirect("core:my-work" if lands_on_work else "datasets:cohort-list")


class MyWorkView(PolicyViewMixin, TemplateView):
    """The user's open scoring and rating assignments and adjudications, with progress and a button to go on."""

    permission_required = ()  # every signed-in user: the assignments are their own
    template_name = "core/my_work.html"

    def get_context_data(self, **kwargs):
        return super().get_context_data(assignments=work_of(self.request.user), **kwargs)


class AuditListView(PolicyViewMixin, ListView):
    """The audit trail with filters (actor, object, action, time): everything for curators and admins, a
    rater's own answers for raters; each record shown as a before -> after diff."""

    permission_required = "core.view_changerecord"
    template_name = "core/audit.html"
    context_object_name = "records"
    paginate_by = 50

    def get_queryset(self):
        self.filterset = ChangeRecordFilter(self.request.GET, queryset=audit.visible_records(self.request.user))
        return self.filterset.qs.order_by("-pk") if self.filterset.is_valid() else ChangeRecord.objects.none()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        user = self.request.user
        for record in context["records"]:
            record.changes = audit.diff(*audit.states_seen_by(record, user))
        query = self.request.GET.copy()
        query.pop("page", None)
        return {**context, "filter": self.filterset, "query": query.urlencode(), "sees_all": audit.sees_all(user),
                "errors": self.filterset.errors}


class UserListView(PolicyViewMixin, ListView):
    """Accounts and their roles (admins): each links to its page and its history."""

    permission_required = "auth.change_user"
    template_name = "core/user_list.html"
    context_object_name = "accounts"

    def get_queryset(self):
        return get_user_model().objects.order_by("username").prefetch_related("groups")


class UserDetailView(PolicyViewMixin, DetailView):
    """One account: its roles, changed with a form (one role change record), and a link to its history."""

    permission_required = "auth.change_user"
    template_name = "core/user_detail.html"
    context_object_name = "account"

    def get_queryset(self):
        return get_user_model().objects.all()

    def get_context_data(self, **kwargs):
        account = self.object
        return super().get_context_data(roles=ROLES, account_roles=users.role_state(account)["roles"],
                                        history=audit.history_query(account), **kwargs)

    def post(self, request, *args, **kwargs):
        account = self.get_object()
        try:
            changed = users.set_roles(account, request.POST.getlist("roles"), actor=request.user)
        except InputError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Roles of {account.get_username()} saved." if changed
                             else "Nothing changed.")
        return redirect("core:user-detail", account.pk)


class DocumentView(TemplateView):
    """A reference document of docs/ (model contract, rule catalogue, agreement references), for every user."""

    template_name = "core/document.html"

    def get_context_data(self, **kwargs):
        try:
            title, html = docs.document(self.kwargs["name"])
        except KeyError:
            raise Http404("no such document") from None
        return super().get_context_data(title=title, html=html, documents=docs.DOCUMENTS, **kwargs)
