from django.urls import path

from datasets import views

app_name = "datasets"
urlpatterns = [
    path("", views.CohortListView.as_view(), name="cohort-list"),
    path("cohorts/<int:cohort_id>/", views.RecordingListView.as_view(), name="cohort"),
    path("recordings/", views.RecordingListView.as_view(), name="recording-list"),
    path("recordings/<int:pk>/", views.RecordingDetailView.as_view(), name="recording"),
    path("recordings/<int:pk>/original/", views.OriginalPsgView.as_view(), name="recording-original"),
    path("recordings/<int:pk>/hypnogram/", views.RecordingHypnogramView.as_view(), name="recording-hypnogram"),
    path("recordings/<int:pk>/epochs/<int:index>/", views.EpochView.as_view(), name="epoch"),
    path("recordings/<int:pk>/epochs/<int:index>/signals.bin", views.EpochSignalsView.as_view(), name="epoch-signals"),
    path("recordings/<int:pk>/epochs/<int:index>/clinical.bin", views.EpochClinicalSignalsView.as_view(),
         name="epoch-clinical-signals"),
    path("imports/new/", views.ImportNewView.as_view(), name="import-new"),
    path("imports/<int:pk>/", views.ImportDetailView.as_view(), name="import"),
    path("imports/<int:pk>/retry/", views.ImportActionView.as_view(action="retry"), name="import-retry"),
    path("imports/<int:pk>/dismiss/", views.ImportActionView.as_view(action="dismiss"), name="import-dismiss"),
    path("images/<str:sha256>.png", views.ImageView.as_view(), name="image"),
]
