from django.urls import path

from inference import views

app_name = "inference"
urlpatterns = [
    path("", views.job_list, name="job-list"),
    path("jobs/<int:pk>/", views.job_detail, name="job"),
    path("jobs/<int:pk>/cancel/", views.job_cancel, name="job-cancel"),
    path("evaluation/", views.evaluation, name="evaluation"),
]
