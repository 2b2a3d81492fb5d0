from django.urls import path

from annotation import views

app_name = "annotation"
urlpatterns = [
    path("", views.CampaignListView.as_view(), name="campaign-list"),
    path("new/", views.CampaignNewView.as_view(), name="campaign-new"),
    path("<int:pk>/score/", views.ScoreView.as_view(), name="score"),
    path("<int:pk>/dashboard/", views.DashboardView.as_view(), name="dashboard"),
    path("<int:pk>/adjudicate/", views.AdjudicateView.as_view(), name="adjudicate"),
]
