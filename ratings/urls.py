from django.urls import path

from ratings import views

app_name = "ratings"
urlpatterns = [
    path("", views.CampaignListView.as_view(), name="campaign-list"),
    path("new/", views.CampaignNewView.as_view(), name="campaign-new"),
    path("<int:pk>/rate/", views.RateView.as_view(), name="rate"),
    path("<int:pk>/dashboard/", views.DashboardView.as_view(), name="dashboard"),
    path("<int:pk>/report/", views.ReportView.as_view(), name="report"),
]
