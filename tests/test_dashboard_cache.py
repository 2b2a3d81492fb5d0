"""Big campaigns' dashboards: the last stored figures with their age, and a `cpu` job that recomputes them
(core.services.statistics_cache). Small campaigns keep computing on each request."""
import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from annotation.models import StatisticsJob as ScoringStatisticsJob
from annotation.services import queue
from annotation.services.dashboard import campaign_statistics as scoring_statistics
from core.models import BackgroundJob
from core.roles import RESEARCHER
from core.services.statistics_cache import jsonable
from ratings.models import StatisticsJob as RatingStatisticsJob
from ratings.services.statistics import campaign_statistics as rating_statistics
from tests.test_release_worker import wait_until
from tests.test_ratings import _rated_campaign
from tests.test_scoring_dashboard import scored  # noqa: F401  (fixture)


@pytest.mark.django_db
def test_a_small_campaign_is_computed_on_each_request(scored, role_client):  # noqa: F811
    campaign, _ = scored
    html = role_client(RESEARCHER).get(reverse("annotation:dashboard", args=[campaign.pk])).content.decode()
    assert 'id="fleiss"' in html and 'id="statistics-age"' not in html
    assert not ScoringStatisticsJob.objects.exists()


@pytest.mark.django_db
def test_big_campaign_shows_its_last_figures_with_their_age_and_a_job_recomputes_them(
        scored, role_client, settings, django_capture_on_commit_callbacks):  # noqa: F811
    campaign, raters = scored
    settings.STATISTICS_INLINE_LIMIT = 10  # 90 labels: a big campaign
    client = role_client(RESEARCHER)
    url = reverse("annotation:dashboard", args=[campaign.pk])
    with django_capture_on_commit_callbacks() as sent:  # the task messages, not published
        html = client.get(url).content.decode()
    assert "being computed for the first time" in html and 'id="fleiss"' not in html
    job = ScoringStatisticsJob.objects.get(campaign=campaign)
    assert job.state == BackgroundJob.PENDING and len(sent) == 1
    with django_capture_on_commit_callbacks() as sent:
        client.get(url)  # the job waits: nothing more is queued
    assert not sent and ScoringStatisticsJob.objects.count() == 1

    from annotation.tasks import statistics as task

    task.apply(args=(job.pk,), throw=True)  # the worker's task, run here
    job.refresh_from_db()
    assert job.state == BackgroundJob.SUCCEEDED
    assert job.result == jsonable(scoring_statistics(campaign))  # equal to the inline computation
    ScoringStatisticsJob.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(minutes=3))
    with django_capture_on_commit_callbacks() as sent:
        html = client.get(url).content.decode()
    assert "Figures computed" in html and "3\xa0minutes ago" in html and "not counted yet" not in html
    kappa = next(p for p in job.result["pairwise"] if {p["a"], p["b"]} == {"scorer-0", "scorer-1"})["kappa"]
    assert 'id="fleiss"' in html and f"{kappa:.3f}" in html and not sent

    item, _ = queue.next_item(campaign, raters[2])  # a new label: the stored figures are stale
    queue.submit_label(campaign, raters[2], item, stage="N2", client_id=uuid.uuid4(), seconds_spent=5.0)
    with django_capture_on_commit_callbacks() as sent:
        html = client.get(url).content.decode()
    assert "not counted yet" in html and f"{kappa:.3f}" in html and len(sent) == 1
    assert ScoringStatisticsJob.objects.filter(state=BackgroundJob.PENDING).count() == 1


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_on_the_cpu_queue_stores_what_the_inline_computation_gives(make_user, client, settings,
                                                                            celery_worker):
    campaign, _ = _rated_campaign(make_user)
    settings.STATISTICS_INLINE_LIMIT = 10
    client.force_login(make_user(RESEARCHER))
    html = client.get(reverse("ratings:dashboard", args=[campaign.pk])).content.decode()
    assert "being computed for the first time" in html
    job = RatingStatisticsJob.objects.get(campaign=campaign)
    wait_until(lambda: RatingStatisticsJob.objects.get(pk=job.pk).is_finished, 60, "the statistics job")
    job.refresh_from_db()
    assert (job.state, job.queue) == (BackgroundJob.SUCCEEDED, "cpu"), job.error
    assert job.result == jsonable(rating_statistics(campaign))
    report = client.get(reverse("ratings:report", args=[campaign.pk])).content.decode()
    assert 'id="report"' in report and "Figures computed" in report
    assert client.get(reverse("ratings:report", args=[campaign.pk]) + "?format=json").json() == job.result
    assert RatingStatisticsJob.objects.count() == 1  # nothing changed since: no second run


@pytest.mark.django_db
def test_raters_reach_no_dashboard_nor_stored_figures(scored, make_user, client, settings):  # noqa: F811
    scoring, _ = scored
    rating, users = _rated_campaign(make_user)
    settings.STATISTICS_INLINE_LIMIT = 10
    ScoringStatisticsJob.objects.create(campaign=scoring, state=BackgroundJob.SUCCEEDED, finished_at=timezone.now(),
                                        result=jsonable(scoring_statistics(scoring)))
    client.force_login(users[0])  # a rater of both campaigns
    for url in (reverse("annotation:dashboard", args=[scoring.pk]), reverse("ratings:dashboard", args=[rating.pk]),
                reverse("ratings:report", args=[rating.pk]), reverse("ratings:report", args=[rating.pk]) + "?format=json",
                f"/api/scoring/campaigns/{scoring.pk}/statistics/", f"/api/ratings/campaigns/{rating.pk}/statistics/"):
        response = client.get(url)
        assert response.status_code in (403, 404), url
        assert b"secret-model-v7" not in response.content and b"reference" not in response.content
    assert not RatingStatisticsJob.objects.exists()  # nothing queued on a rater's behalf
