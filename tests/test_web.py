"""Pages, API, roles and blinding through Django's test client; /healthz; image caching."""
import pytest
from django.core.cache import cache
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from core.roles import ADMIN, CURATOR, RATER, RESEARCHER
from datasets.models import Epoch, EpochImage
from tests.conftest import broker_at
from tests.factories import assign_rater

pytestmark = pytest.mark.django_db


def pages(recording):
    return [
        reverse("datasets:cohort-list"),
        reverse("datasets:cohort", args=[recording.cohort_id]),
        reverse("datasets:recording-list"),
        reverse("datasets:recording", args=[recording.pk]),
        reverse("datasets:epoch", args=[recording.pk, 5]),
    ]


def test_login_required_everywhere_but_healthz(client, imported):
    for url in pages(imported) + [reverse("datasets:import-new")]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/")
    for url in ("/api/recordings/", "/api/docs/", "/api/schema/"):
        assert client.get(url).status_code in (401, 403), url
    cache.clear()
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_healthz_reports_database_broker_and_storage(client, make_user):
    cache.clear()
    client.force_login(make_user(ADMIN))  # staff see the components
    data = client.get("/healthz").json()
    assert data["status"] == "ok"
    assert {key: data[key]["ok"] for key in ("database", "broker", "storage")} == {"database": True, "broker": True, "storage": True}
    assert data["broker"]["backend"] in ("filesystem", "redis")


def test_healthz_reports_a_broken_broker(client, make_user):
    cache.clear()
    client.force_login(make_user(ADMIN))
    with broker_at("redis://127.0.0.1:1/0"):
        response = client.get("/healthz")
    cache.clear()
    assert response.status_code == 503
    assert response.json()["broker"]["ok"] is False


@pytest.mark.parametrize("role", [RATER, CURATOR, RESEARCHER, ADMIN])
def test_every_role_can_browse(role, role_client, imported):
    client = role_client(role)
    if role == RATER:
        assign_rater(imported, f"{RATER}-user")  # raters browse the recordings of their campaigns
    for url in pages(imported):
        assert client.get(url).status_code == 200, (role, url)


def test_reference_stage_is_hidden_from_raters(role_client, imported):
    epoch = imported.epochs.get(index=5)
    rater = role_client(RATER)
    assign_rater(imported, f"{RATER}-user")
    assert rater.get(reverse("datasets:epoch", args=[imported.pk, 5])).status_code == 200
    html = rater.get(reverse("datasets:epoch", args=[imported.pk, 5])).content.decode()
    assert 'id="reference-stage"' not in html
    assert "Reference stage" not in html
    assert 'class="hypnogram"' not in rater.get(reverse("datasets:recording", args=[imported.pk])).content.decode()
    api = rater.get(f"/api/epochs/?recording={imported.pk}").json()["results"]
    assert len(api) == 100
    assert all("stage" not in row and "reference_rules" not in row for row in api)
    researcher = role_client(RESEARCHER)
    html = researcher.get(reverse("datasets:epoch", args=[imported.pk, 5])).content.decode()
    assert f'id="reference-stage" class="stage stage-{epoch.stage}"' in html
    assert researcher.get(f"/api/epochs/{epoch.pk}/").json()["stage"] == epoch.stage


def test_massex_n_beside_the_index_for_researchers_not_raters(role_client, access_world):
    first, second, third = access_world.epochs
    first.stage, first.massex_n = "unscored", None
    first.save()
    Epoch.objects.filter(pk=second.pk).update(massex_n=0)
    Epoch.objects.filter(pk=third.pk).update(massex_n=1)
    recording = access_world.recording
    researcher = role_client(RESEARCHER)
    page = reverse("datasets:epoch", args=[recording.pk, 1])
    assert 'id="massex-n"' in (html := researcher.get(page).content.decode()) and "MASS-EX N 0" in html
    assert "MASS-EX N none (unscored)" in researcher.get(reverse("datasets:epoch", args=[recording.pk, 0])).content.decode()
    assert researcher.get(f"/api/epochs/{second.pk}/").json()["massex_n"] == 0
    rows = researcher.get(f"/api/epochs/?recording={recording.pk}").json()["results"]
    assert [row["massex_n"] for row in rows] == [None, 0, 1]
    rater = role_client(RATER)  # the same test client, now logged in as a rater
    assign_rater(recording, f"{RATER}-user")
    assert rater.get(f"/api/epochs/{second.pk}/").status_code == 200
    for index in (0, 1):
        html = rater.get(reverse("datasets:epoch", args=[recording.pk, index])).content.decode()
        assert "massex-n" not in html and "MASS-EX" not in html
    assert "massex_n" not in rater.get(f"/api/epochs/{second.pk}/").json()
    assert all("massex_n" not in row for row in rater.get(f"/api/epochs/?recording={recording.pk}").json()["results"])


def test_import_page_and_api_need_the_curator_role(role_client):
    for role, status in ((RATER, 403), (RESEARCHER, 403), (CURATOR, 200)):
        client = role_client(role)
        assert client.get(reverse("datasets:import-new")).status_code == status, role
        client.logout()


def test_api_permissions_per_role(make_user, imported):
    api = APIClient()
    expectations = {
        RATER: {"recordings": 200, "imports": 403, "delete": 403, "cohort_post": 403},
        RESEARCHER: {"recordings": 200, "imports": 200, "delete": 403, "cohort_post": 403},
        CURATOR: {"recordings": 200, "imports": 200, "delete": None, "cohort_post": 201},
    }
    for role, expected in expectations.items():
        api.force_authenticate(make_user(role))
        assert api.get("/api/recordings/").status_code == expected["recordings"], role
        assert api.get("/api/imports/").status_code == expected["imports"], role
        assert api.post("/api/cohorts/", {"name": f"new-{role}"}).status_code == expected["cohort_post"], role
        if expected["delete"]:
            assert api.delete(f"/api/recordings/{imported.pk}/").status_code == expected["delete"], role


def test_token_auth_and_schema(make_user, imported):
    user = make_user(RESEARCHER)
    token = Token.objects.create(user=user)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    rows = api.get("/api/recordings/").json()["results"]
    assert [r["name"] for r in rows] == [imported.name]
    assert rows[0]["derivations"] == imported.derivations
    schema = api.get("/api/schema/?format=json")
    assert schema.status_code == 200
    assert "/api/imports/" in schema.json()["paths"]
    assert api.get("/api/docs/").status_code == 200


def test_images_have_long_cache_and_etag(role_client, imported):
    image = EpochImage.objects.filter(epoch__recording=imported).first()
    client = role_client(RATER)
    assign_rater(imported, f"{RATER}-user")
    url = reverse("datasets:image", args=[image.sha256])
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response["ETag"] == f'"{image.sha256}"'
    assert "max-age=31536000" in response["Cache-Control"] and "private" in response["Cache-Control"]
    assert client.get(url, HTTP_IF_NONE_MATCH=f'"{image.sha256}"').status_code == 304
    assert client.get(reverse("datasets:image", args=["0" * 64])).status_code == 404
    client.logout()
    assert client.get(url).status_code == 302


def test_viewer_image_is_rendered_once_and_cached(role_client, imported):
    client = role_client(RATER)
    assign_rater(imported, f"{RATER}-user")
    url = reverse("datasets:epoch", args=[imported.pk, 10])
    assert client.get(url).status_code == 200
    client.get(url)
    viewers = EpochImage.objects.filter(epoch__recording=imported, kind=EpochImage.VIEWER)
    assert list(viewers.values_list("variant", flat=True)) == ["context,guides"]
    client.get(url + "?context=0&guides=0")
    assert sorted(viewers.values_list("variant", flat=True)) == ["context,guides", "plain"]
    plain = viewers.get(variant="plain")
    context = viewers.get(variant="context,guides")
    assert context.width > 2 * plain.width


def test_upload_page_queues_an_import_job(role_client, night_edf, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from datasets.models import ImportJob

    client = role_client(CURATOR)
    upload = SimpleUploadedFile("night.edf", night_edf.read_bytes())
    response = client.post(reverse("datasets:import-new"), {"file": upload, "cohort": "Uploads", "mains_hz": 50,
                                                             "channel_map": '{"F4-M1": "EEG F4-CLE"}'})
    job = ImportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("datasets:import", args=[job.pk])
    assert job.state == ImportJob.PENDING and job.cohort_name == "Uploads"
    assert job.channel_map == {"F4-M1": "EEG F4-CLE"}
    assert client.get(response["Location"]).status_code == 200


def test_upload_with_a_mass_ex_csv_through_the_api(make_user, tmp_path, media_root):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from datasets.models import ImportJob
    from datasets.services.imports import run_job
    from tests.edf_factory import noise_channels, stage_annotations, write_edf

    psg = write_edf(tmp_path / "01-03-0006 PSG.edf", noise_channels(["EEG C4-CLE"], 120, 256.0), 256.0,
                    stage_annotations(["?", "W", "MT", "N2"]))
    csv = ("custom_id,Subject,N,Stage,applicable_rules\n"
           "01-03-0006#0_W,01-03-0006,0,W,W.1\n01-03-0006#1_N2,01-03-0006,1,N2,\"N2.1, N2.2\"\n").encode()
    api = APIClient()
    api.force_authenticate(make_user(CURATOR))
    response = api.post("/api/imports/", {"file": SimpleUploadedFile(psg.name, psg.read_bytes()), "cohort": "MASS",
                                          "massex": SimpleUploadedFile("01-03-0006.csv", csv)}, format="multipart")
    assert response.status_code == 201, response.json()
    assert response.json()["massex_name"] == "01-03-0006.csv" and response.json()["massex_contiguous"] is False
    job = run_job(response.json()["id"])
    assert job.state == ImportJob.SUCCEEDED, job.error
    assert list(job.recording.epochs.values_list("massex_n", "reference_rules")) == [
        (None, []), (0, ["W.1"]), (None, []), (1, ["N2.1", "N2.2"])]
    assert not list((media_root / "uploads").rglob("*.*"))  # the uploads are deleted once imported


def test_upload_form_rejects_a_channel_map_path(role_client, night_edf):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client = role_client(CURATOR)
    upload = SimpleUploadedFile("night.edf", night_edf.read_bytes())
    response = client.post(reverse("datasets:import-new"), {"file": upload, "cohort": "c", "mains_hz": 50,
                                                             "channel_map": "/etc/passwd"})
    assert response.status_code == 200
    assert "expected a JSON object" in response.content.decode()


def test_epoch_signals_are_the_prepared_signals_as_int16_with_their_metadata(role_client, imported):
    import json

    import numpy as np

    from datasets.services import storage

    client = role_client(RESEARCHER)
    url = reverse("datasets:epoch-signals", args=[imported.pk, 10])
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/octet-stream"
    meta = json.loads(response["X-Signal-Meta"])
    assert meta["indices"] == [9, 10, 11] and meta["current"] == 1 and meta["derivations"] == imported.derivations
    values = np.frombuffer(response.content, "<i2").reshape(6, 3 * 3000) * meta["scale_uv"]
    prepared = storage.load_array(imported.signal_file)[:, 9 * 3000: 12 * 3000]
    assert np.abs(values - np.clip(prepared, -1638, 1638)).max() <= meta["scale_uv"] / 2 + 1e-6
    assert client.get(url, HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304
    first = client.get(reverse("datasets:epoch-signals", args=[imported.pk, 0]) + "?context=1")
    assert json.loads(first["X-Signal-Meta"])["indices"] == [0, 1]
    assert client.get(reverse("datasets:epoch-signals", args=[imported.pk, 999])).status_code == 404
