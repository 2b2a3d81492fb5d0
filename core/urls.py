from django.urls import path

from core.views import AuditListView, UserDetailView, UserListView

app_name = "core"
urlpatterns = [
    path("audit/", AuditListView.as_view(), name="audit"),
    path("people/", UserListView.as_view(), name="user-list"),
    path("people/<int:pk>/", UserDetailView.as_view(), name="user-detail"),
]
