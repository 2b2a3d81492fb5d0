from django.urls import path

from core.views import AuditListView, DocumentView, LandingView, MyWorkView, UserDetailView, UserListView

app_name = "core"
urlpatterns = [
    path("home/", LandingView.as_view(), name="home"),
    path("work/", MyWorkView.as_view(), name="my-work"),
    path("audit/", AuditListView.as_view(), name="audit"),
    path("docs/<slug:name>/", DocumentView.as_view(), name="doc"),
    path("people/", UserListView.as_view(), name="user-list"),
    path("people/<int:pk>/", UserDetailView.as_view(), name="user-detail"),
]
