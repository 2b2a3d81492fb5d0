from django.urls import path

from annotation import views

app_name = "annotation"
urlpatterns = [
    path("", views.CampaignListView.as_view(), name="campaign-list"),
    path("<int:pk>/score/", views.ScoreView.as_view(), name="score"),
]
