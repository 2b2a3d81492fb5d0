from django.urls import path

from datasets import views

app_name = "datasets"
urlpatterns = [
    path("", views.cohort_list, name="cohort-list"),
    path("cohorts/<int:cohort_id>/", views.recording_list, name="cohort"),
    path("recordings/", views.recording_list, name="recording-list"),
    path("recordings/<int:pk>/", views.recording_detail, name="recording"),
    path("recordings/<int:pk>/epochs/<int:index>/", views.epoch_view, name="epoch"),
    path("imports/new/", views.import_new, name="import-new"),
    path("imports/<int:pk>/", views.import_detail, name="import"),
    path("images/<str:sha256>.png", views.image, name="image"),
]
