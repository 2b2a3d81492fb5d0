from django.urls import path

from inference import views

app_name = "inference"
urlpatterns = [
    path("", views.JobListView.as_view(), name="job-list"),
    path("jobs/<int:pk>/", views.JobDetailView.as_view(), name="job"),
    path("jobs/<int:pk>/cancel/", views.JobCancelView.as_view(), name="job-cancel"),
    path("evaluation/", views.EvaluationPageView.as_view(), name="evaluation"),
]
