"""Scoring needs only the web server and the database: a real Redis broker stopped mid-session changes nothing."""
import socket
import subprocess
import time
import uuid

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from annotation.services.campaigns import create_campaign
from core.roles import RATER
from tests.conftest import broker_at

pytestmark = pytest.mark.django_db


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def private_redis():
    """A Redis server of this test's own, as the Celery broker; stopped by the test."""
    port = _free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL)
    for _ in range(50):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    try:
        with broker_at(f"redis://127.0.0.1:{port}/0"):
            yield server
    finally:
        server.kill()
        server.wait()


def _score(api, campaign, n):
    for _ in range(n):
        served = api.post(f"/api/scoring/campaigns/{campaign.pk}/next/")
        assert served.status_code == 200, served.content
        saved = api.post(f"/api/scoring/campaigns/{campaign.pk}/labels/",
                         {"item": served.json()["item"], "stage": "N2", "client_id": str(uuid.uuid4())}, format="json")
        assert saved.status_code == 201, saved.content


def test_scoring_goes_on_with_the_broker_stopped(private_redis, make_user, imported, client):
    rater = make_user(RATER)
    campaign = create_campaign("Broker down", recordings=[imported], raters=[rater], overlap=1, unit="recording")
    api = APIClient()
    api.force_authenticate(rater)
    client.force_login(rater)
    staff = Client()
    staff.force_login(make_user("admin", "health-admin"))
    assert staff.get("/healthz").json()["broker"]["ok"] is True  # the broker really is this Redis
    _score(api, campaign, 3)

    private_redis.kill()
    private_redis.wait()
    cache.clear()
    assert staff.get("/healthz").json()["broker"]["ok"] is False  # ... and it is down now
    assert client.get(f"/scoring/{campaign.pk}/score/").status_code == 200
    _score(api, campaign, 3)
    ahead = api.post(f"/api/scoring/campaigns/{campaign.pk}/ahead/?count=3")
    assert ahead.status_code == 200 and len(ahead.json()) == 3
    hypnogram = api.get(f"/api/scoring/campaigns/{campaign.pk}/hypnogram/?recording={imported.pk}").json()
    assert [row["index"] for row in hypnogram] == [0, 1, 2, 3, 4, 5]
