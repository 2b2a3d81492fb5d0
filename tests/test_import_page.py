"""The import page for a curator: messages in words naming the file, retry and dismiss of a failed import, the
file types the form takes."""
import html
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from playwright.sync_api import expect

from core.models import ChangeRecord
from core.roles import CURATOR, RESEARCHER
from datasets.models import ImportJob
from datasets.services import imports
from tests.test_browser import SHOTS, browser, login  # noqa: F401  (browser is a fixture)

REPR = re.compile(r"\bb'|\bb\"|/uploads/|/tmp|Traceback|internal error")  # byte reprs, server paths, internals


def upload(client, name: str, content: bytes, **fields):
    response = client.post(reverse("datasets:import-new"),
                           {"file": SimpleUploadedFile(name, content), "cohort": "Uploads", "mains_hz": 50, **fields})
    assert response.status_code == 302, response.content[:500]
    return ImportJob.objects.latest("pk")


@pytest.mark.parametrize("name, content, expected", [
    ("scan.edf", b"PK\x03\x04\x14\x00\x00\x00" + b"\x00" * 400, "scan.edf: not an EDF or BDF file: it looks like a ZIP archive"),
    ("letter.edf", b"%PDF-1.4\n" + b"x" * 400, "letter.edf: not an EDF or BDF file: it looks like a PDF document"),
    ("notes.edf", b"these are notes, not signals\n" * 20, "notes.edf: not an EDF or BDF file: it looks like a text file"),
    ("night.edf", b"0       " + b" " * 176 + b"25\x00\x01abc" + b" " * 400,
     "night.edf: header field 'header bytes' is not a number"),
])
def test_a_failed_import_says_in_words_what_is_wrong_with_which_file(role_client, name, content, expected):
    client = role_client(CURATOR)
    job = imports.run_job(upload(client, name, content).pk)
    assert job.state == ImportJob.FAILED
    assert job.error.startswith(expected), job.error
    assert not REPR.search(job.error), job.error
    page = html.unescape(client.get(reverse("datasets:import", args=[job.pk])).content.decode())
    assert expected in page


def test_a_hypnogram_error_names_the_uploaded_file_not_its_stored_path(role_client, night_edf):
    client = role_client(CURATOR)
    job = upload(client, "night.edf", night_edf.read_bytes(),
                 hypnogram=SimpleUploadedFile("stages.csv", b"onset,duration,stage\n0,30,W\n30,30,Stage X\n"))
    job = imports.run_job(job.pk)
    assert job.state == ImportJob.FAILED
    assert job.error.startswith("stages.csv: line 3"), job.error
    assert not REPR.search(job.error), job.error


def test_a_failed_import_with_its_upload_kept_is_retried_from_its_page(role_client, night_edf, monkeypatch):
    client = role_client(CURATOR)
    job = upload(client, "night.edf", night_edf.read_bytes())
    monkeypatch.setattr(imports, "import_psg", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    job = imports.run_job(job.pk)
    assert job.state == ImportJob.FAILED
    assert job.error.startswith("The import stopped on an unexpected problem (No space left on device)"), job.error
    page = client.get(reverse("datasets:import", args=[job.pk])).content.decode()
    assert reverse("datasets:import-retry", args=[job.pk]) in page
    monkeypatch.undo()
    response = client.post(reverse("datasets:import-retry", args=[job.pk]))
    assert response.status_code == 302 and response["Location"] == reverse("datasets:import", args=[job.pk])
    job.refresh_from_db()
    assert job.state == ImportJob.PENDING and job.error == ""
    record = ChangeRecord.objects.filter(object_type="datasets.importjob", object_id=str(job.pk)).latest("pk")
    assert record.before["state"] == "failed" and record.after["state"] == "pending"
    assert imports.run_job(job.pk).state == ImportJob.SUCCEEDED  # the same job on the same upload


def test_a_failed_import_whose_file_was_bad_offers_to_import_it_again_not_retry(role_client):
    client = role_client(CURATOR)
    job = imports.run_job(upload(client, "scan.edf", b"%PDF-1.4 " * 60, subject_id="S-7").pk)
    page = client.get(reverse("datasets:import", args=[job.pk])).content.decode()
    assert reverse("datasets:import-retry", args=[job.pk]) not in page
    assert "upload it again" in page and "/imports/new/?cohort=Uploads&amp;subject_id=S-7" in page
    refused = client.post(reverse("datasets:import-retry", args=[job.pk]), follow=True)
    assert "was removed when it failed on its content" in refused.content.decode()
    assert ImportJob.objects.get(pk=job.pk).state == ImportJob.FAILED
    form = client.get("/imports/new/?cohort=Uploads&subject_id=S-7").context["form"]
    assert form.initial["cohort"] == "Uploads" and form.initial["subject_id"] == "S-7"


def test_dismissing_a_failed_import_hides_it_from_the_list_and_keeps_a_change_record(role_client, make_user, client):
    curator = role_client(CURATOR)
    job = imports.run_job(upload(curator, "scan.edf", b"%PDF-1.4 " * 60).pk)
    link = f'href="{reverse("datasets:import", args=[job.pk])}"'
    assert link in curator.get(reverse("datasets:recording-list")).content.decode()
    response = curator.post(reverse("datasets:import-dismiss", args=[job.pk]))
    assert response.status_code == 302
    assert link not in curator.get(reverse("datasets:recording-list")).content.decode()
    job.refresh_from_db()
    assert job.dismissed_at is not None and job.state == ImportJob.FAILED  # the row stays
    record = ChangeRecord.objects.get(object_type="datasets.importjob", object_id=str(job.pk), action="update")
    assert record.before["dismissed_at"] is None and record.after["dismissed_at"] is not None
    assert curator.post(reverse("datasets:import-dismiss", args=[job.pk])).status_code == 302
    assert ChangeRecord.objects.filter(object_type="datasets.importjob", object_id=str(job.pk)).count() == 1
    researcher = make_user(RESEARCHER)
    client.force_login(researcher)
    assert client.post(reverse("datasets:import-retry", args=[job.pk])).status_code == 403


def test_a_running_import_cannot_be_dismissed(role_client, night_edf):
    client = role_client(CURATOR)
    job = upload(client, "night.edf", night_edf.read_bytes())
    client.post(reverse("datasets:import-dismiss", args=[job.pk]))
    job.refresh_from_db()
    assert job.dismissed_at is None


def test_the_import_form_names_and_offers_only_the_file_types_it_takes(role_client):
    html = role_client(CURATOR).get(reverse("datasets:import-new")).content.decode()
    assert "EDF, EDF+ (.edf) or BDF (.bdf)" in html
    assert re.search(r'<input type="file" name="file" accept=".edf,.bdf"', html)
    assert re.search(r'name="hypnogram" accept=".edf,.xml,.csv,.tsv,.txt"', html)
    assert re.search(r'name="massex" accept=".csv"', html)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_curator_dismisses_a_failed_import_in_the_browser(browser, live_server, make_user):  # noqa: F811
    curator = make_user(CURATOR)
    job = imports.create_job(source_path="", source_name="scan.edf", cohort="Uploads", in_storage=True)
    job = imports.run_job(job.pk)
    page = login(browser, live_server, curator)
    page.goto(f"{live_server.url}/imports/new/")
    expect(page.locator("#accepted-types")).to_contain_text("EDF, EDF+ (.edf) or BDF (.bdf)")
    page.goto(f"{live_server.url}/imports/{job.pk}/")
    expect(page.locator("[data-job-field=error]")).to_contain_text("upload the file again")
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)
    page.screenshot(path=SHOTS / "import-failed-actions.png", full_page=True)
    page.get_by_role("button", name="Dismiss").click()
    expect(page.locator(".flash")).to_contain_text("dismissed")
    page.goto(f"{live_server.url}/recordings/")
    expect(page.get_by_role("link", name="scan.edf")).to_have_count(0)
