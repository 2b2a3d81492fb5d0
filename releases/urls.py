from django.urls import path

from releases import views

app_name = "releases"
urlpatterns = [
    path("", views.ReleaseListView.as_view(), name="release-list"),
    path("new/", views.ReleaseNewView.as_view(), name="release-new"),
    path("<int:pk>/", views.ReleaseDetailView.as_view(), name="release-detail"),
    path("<int:pk>/files/<path:path>", views.ReleaseFileView.as_view(), name="file"),
]
