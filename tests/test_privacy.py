"""Patient data kept out (spec/privacy.md): a PSG whose file name and header carry a patient's name and
dates is imported under a pseudonymous subject id; its identity stays in restricted fields that curators
see, never on a rater's pages or API answers nor in any file of a release; annotation and hypnogram texts
are scanned; the PHI scan stops a release that carries it; the original file is kept only on request."""
import csv
import io
import re
import tarfile
import threading
import uuid
import zipfile
from datetime import date, datetime, timedelta, timezone

import pyarrow.parquet as pq
import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction

from annotation.models import Label
from annotation.services.campaigns import create_campaign
from core.roles import ADMIN, CURATOR, RATER, RESEARCHER
from datasets.models import Cohort, Epoch, ImportJob, Recording
from datasets.services import identity, imports, pseudonyms, storage
from datasets.services.hypnograms import ScoredEpoch
from datasets.services.massex import ranks
from datasets.services.synthetic import write_synthetic_edf
from ratings.services.campaigns import create_rating_campaign
from releases.models import Release
from releases.services import build as builds

FILE = "Doe_Jane_1962-03-14.edf"
PATIENT = "MCH-0234567 F 14-MAR-1962 Doe_Jane"
MEASURED = date(2023, 5, 17)
RECORDING_FIELD = "Startdate 17-MAY-2023 EMR-88123 X synthetic_psg"
NOTES = ((90.0, "lights off, Mrs Doe"), (150.0, "sleep diary of 14.03.1962 handed in"))
COHORT = "Privacy trial"  # subject prefix PT
# What must never reach a rater or a release: name tokens, birth date, record numbers, measurement date.
IDENTITY = [r"\bDoe\b", r"\bJane\b", r"(?<![0-9A-Za-z])1962(?![0-9A-Za-z])", "14-MAR", "1962-03-14", "MCH-0234567",
            "EMR-88123", "2023-05-17", "17-MAY-2023", r"17\.05\.23", r"17\.05\.2023"]


def leaks(text: str) -> list[str]:
    return [pattern for pattern in IDENTITY if re.search(pattern, text, re.IGNORECASE)]


@pytest.fixture(scope="module")
def doe_files(tmp_path_factory):
    """The identified night (15 min) and a MASS-EX CSV whose second rationale names the patient."""
    folder = tmp_path_factory.mktemp("identified")
    edf = folder / FILE
    night = write_synthetic_edf(edf, hours=0.25, seed=11, sfreq=128.0, patient=PATIENT, recording=RECORDING_FIELD,
                                startdate=MEASURED, notes=NOTES)
    numbers = ranks([ScoredEpoch(0.0, stage) for stage in night.stages])
    scored = [stage for stage, n in zip(night.stages, numbers) if n is not None]
    massex = folder / "rationales.csv"
    with massex.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["custom_id", "Subject", "N", "Stage", "reasoning_text", "applicable_rules"])
        texts = ["Alpha over O2-M1 in most of the epoch.", "Mrs Doe moved; low-amplitude mixed frequency.",
                 "Spindles in C4-M1 at 13 Hz."]
        for n, text in enumerate(texts):
            writer.writerow([f"PT-0001#{n}_{scored[n]}", "PT-0001", n, scored[n], text, ""])
    return edf, massex


def import_doe(doe_files, cohort=COHORT, **options) -> ImportJob:
    """Imported as the CLI and the worker do it (a job run to its end)."""
    edf, massex = doe_files
    job = imports.create_job(source_path=str(edf), source_name=edf.name, cohort=cohort, massex_path=str(massex),
                             massex_name=massex.name, **options)
    job = imports.run_job(job.pk)
    assert job.state == ImportJob.SUCCEEDED, job.error
    return job


_TINY: dict = {}


def tiny_edf(folder, name: str, seed: int, **header):
    """A 3-minute night (6 epochs), written once per test session."""
    key = (name, seed, tuple(sorted(header.items())))
    if key not in _TINY:
        path = folder / f"{seed}-{len(_TINY)}" / name
        path.parent.mkdir()
        write_synthetic_edf(path, hours=0.05, seed=seed, sfreq=128.0, **header)
        _TINY[key] = path
    return _TINY[key]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny")


def cli_import(path, cohort, *args) -> Recording:
    call_command("import_psg", str(path), "--cohort", cohort, *args, verbosity=0)
    return Recording.objects.get(sha256=storage.file_sha256(path))


# --- import: subject id, restricted fields, dates, scans ---------------------------------------------


def test_the_import_names_the_subject_pseudonymously_and_keeps_identity_restricted(db, doe_files):
    job = import_doe(doe_files)
    recording = job.recording
    cohort = recording.cohort
    assert recording.name == "PT-0001" and cohort.subject_prefix == "PT" and cohort.next_subject_number == 2
    assert recording.source_filename == FILE
    assert recording.edf_patient == PATIENT and recording.edf_recording == RECORDING_FIELD
    measured = datetime(2023, 5, 17, 23, 0, tzinfo=timezone.utc)
    assert recording.measured_at == measured
    assert cohort.date_policy == Cohort.SHIFT_DATES and cohort.date_shift_days <= -365
    assert recording.start_time == measured + timedelta(days=cohort.date_shift_days)
    assert recording.subject_age == 61
    assert not leaks(" ".join(recording.processing_notes))  # served to raters
    findings = "\n".join(recording.identity_findings)
    assert "PSG annotation at 90 s: 'Mrs Doe' (title and name), 'Doe' (patient name)" in findings
    assert "PSG annotation at 150 s: '14.03.1962' (birth date)" in findings
    rationales = list(Epoch.objects.filter(recording=recording).exclude(reference_rationale="")
                      .order_by("index").values_list("index", "reference_rationale"))
    assert [text for _, text in rationales] == ["Alpha over O2-M1 in most of the epoch.",
                                                "[redacted] moved; low-amplitude mixed frequency.",
                                                "Spindles in C4-M1 at 13 Hz."]
    assert f"epoch {rationales[1][0]} rationale: 'Mrs Doe' (title and name), 'Doe' (patient name) redacted" in findings
    assert "3 names or dates found in annotation and hypnogram texts" in job.message


def test_curators_see_the_original_name_and_header_on_the_recording_and_import_pages(db, doe_files, role_client):
    job = import_doe(doe_files)
    curator = role_client(CURATOR)
    html = curator.get(f"/recordings/{job.recording_id}/").content.decode()
    assert f'id="source-file">{FILE}<' in html and leaks(html)  # what a rater's pages are checked for
    assert PATIENT in html and RECORDING_FIELD in html and 'id="subject-id">PT-0001<' in html
    assert "&#x27;Mrs Doe&#x27; (title and name)" in html and "lights off, Mrs Doe" not in html  # findings, not texts
    data = curator.get(f"/api/recordings/{job.recording_id}/").json()
    assert data["source_filename"] == FILE and data["edf_patient"] == PATIENT and data["subject_age"] == 61
    assert data["measured_at"].startswith("2023-05-17")
    assert "Mrs Doe" in curator.get(f"/imports/{job.pk}/").content.decode()


def test_no_name_or_date_reaches_a_rater(db, doe_files, make_user, client):
    recording = import_doe(doe_files).recording
    rater = make_user(RATER)
    # an open scoring campaign: a blind one would hold the rating items back until it is scored
    scoring = create_campaign("Privacy scoring", recordings=[recording], overlap=1, raters=[rater],
                              show_reference=True, show_model_outputs=True)
    rating = create_rating_campaign("Privacy rating", cohorts=[recording.cohort], raters=[rater],
                                    expert_sources=["massex"], overlap=1)
    client.force_login(rater)
    epoch = recording.epochs.get(index=3)
    pages = ["/", f"/cohorts/{recording.cohort_id}/", "/recordings/", f"/recordings/{recording.pk}/",
             *[f"/recordings/{recording.pk}/epochs/{i}/" for i in range(recording.epoch_count)],
             "/scoring/", f"/scoring/{scoring.pk}/score/", "/rating/", f"/rating/{rating.pk}/rate/",
             "/api/cohorts/", f"/api/cohorts/{recording.cohort_id}/", "/api/recordings/",
             f"/api/recordings/{recording.pk}/",
             f"/api/epochs/?recording={recording.pk}", f"/api/epochs/{epoch.pk}/", "/api/scoring/campaigns/",
             f"/api/scoring/campaigns/{scoring.pk}/", f"/api/scoring/campaigns/{scoring.pk}/labels/",
             f"/api/scoring/campaigns/{scoring.pk}/hypnogram/?recording={recording.pk}", "/api/ratings/campaigns/",
             f"/api/ratings/campaigns/{rating.pk}/", f"/api/ratings/campaigns/{rating.pk}/ratings/"]
    seen = {}
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        seen[url] = response.content.decode()
    for url in (f"/api/scoring/campaigns/{scoring.pk}/next/", f"/api/ratings/campaigns/{rating.pk}/next/",
                f"/api/ratings/campaigns/{rating.pk}/ahead/?count=5"):
        response = client.post(url)
        assert response.status_code == 200, url
        seen[url] = response.content.decode()
    assert {url: leaks(text) for url, text in seen.items() if leaks(text)} == {}
    assert client.get("/api/imports/").status_code == 403 and client.get("/imports/1/").status_code == 403
    served = seen[f"/api/ratings/campaigns/{rating.pk}/ahead/?count=5"]
    assert "[redacted] moved" in served  # the rater rates the MASS-EX rationales, the name redacted at import
    assert "PT-0001" not in "".join(seen.values())  # raters see a pseudonym of the recording, not even its subject id


# --- subject ids ----------------------------------------------------------------------------------


def test_subject_ids_are_numbered_per_cohort_given_or_kept_as_mass_ids(db, tiny_folder):
    first = cli_import(tiny_edf(tiny_folder, "night.edf", 1), "Sleep lab")
    second = cli_import(tiny_edf(tiny_folder, "night.edf", 2), "Sleep lab")
    other = cli_import(tiny_edf(tiny_folder, "night.edf", 3), "Sleep clinic")
    assert (first.name, second.name, other.name) == ("SL-0001", "SL-0002", "SC-0001")
    mass = cli_import(tiny_edf(tiny_folder, "01-03-0006 PSG.edf", 4), "MASS")
    assert mass.name == "01-03-0006"
    given = cli_import(tiny_edf(tiny_folder, "night.edf", 5), "Sleep lab", "--subject-id", "SL-0003")
    assert given.name == "SL-0003"
    after = cli_import(tiny_edf(tiny_folder, "night.edf", 6), "Sleep lab")
    assert after.name == "SL-0004"  # the number a curator gave is skipped
    assert Cohort.objects.get(name="Sleep lab").next_subject_number == 5


@pytest.mark.parametrize(("subject_id", "message"), [
    ("../etc", "subject id '../etc': a subject id is 1 to 64 letters, digits, '.', '_' or '-'"),
    ("a/b", "subject id 'a/b': a subject id is"),
    ("x" * 65, "a subject id is 1 to 64"),
    ("SL-0001", "subject id 'SL-0001' is already used in cohort 'Sleep lab'"),
    ("Doe_Jane", "subject id 'Doe_Jane' carries the subject's identity (patient name of the file)"),
])
def test_a_given_subject_id_is_checked(db, tiny_folder, subject_id, message):
    cli_import(tiny_edf(tiny_folder, "night.edf", 1), "Sleep lab")
    doe = tiny_edf(tiny_folder, FILE, 7, patient=PATIENT)
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("import_psg", str(doe), "--cohort", "Sleep lab", "--subject-id", subject_id, verbosity=0)
    assert Recording.objects.count() == 1


def test_a_mass_id_twice_in_one_cohort_is_refused(db, tiny_folder):
    cli_import(tiny_edf(tiny_folder, "01-03-0006 PSG.edf", 4), "MASS")
    with pytest.raises(CommandError, match="MASS subject 01-03-0006 is already a recording of cohort 'MASS'"):
        cli_import(tiny_edf(tiny_folder, "01-03-0006 PSG.edf", 8), "MASS")


def test_subject_id_through_the_upload_api(db, tiny_folder, make_user, client):
    client.force_login(make_user(CURATOR))
    path = tiny_edf(tiny_folder, "night.edf", 1)
    bad = client.post("/api/imports/", {"file": SimpleUploadedFile(path.name, path.read_bytes()), "cohort": "Up",
                                        "subject_id": "a b"})
    assert bad.status_code == 400 and "subject id 'a b'" in bad.json()["detail"]
    made = client.post("/api/imports/", {"file": SimpleUploadedFile(path.name, path.read_bytes()), "cohort": "Up",
                                         "subject_id": "UP-42"})
    assert made.status_code == 201 and made.json()["subject_id"] == "UP-42"
    job = imports.run_job(made.json()["id"])
    assert job.recording.name == "UP-42"


@pytest.mark.django_db(transaction=True)
def test_numbering_is_race_safe():
    """Imports into one cohort at once each draw their own number (the counter is advanced under a lock)."""
    cohort = Cohort.objects.create(name="Race cohort")
    start, names, errors = threading.Barrier(6), [], []

    def one_import(i):
        try:
            start.wait()
            with transaction.atomic():
                locked = Cohort.objects.select_for_update().get(pk=cohort.pk)
                name = pseudonyms.subject_id_for(locked, given="", file_name=f"night-{i}.edf")
                Recording.objects.create(cohort=locked, name=name, sha256=f"{i:064d}", source_filename=f"night-{i}.edf",
                                         file_format="EDF+", duration_s=30, mains_hz=50)
            names.append(name)
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=one_import, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(names) == [f"RC-{n:04d}" for n in range(1, 7)]


def test_subject_ids_are_unique_in_a_cohort(db):
    cohort = Cohort.objects.create(name="Unique")
    Recording.objects.create(cohort=cohort, name="U-1", sha256="1" * 64, source_filename="a.edf", file_format="EDF",
                             duration_s=30, mains_hz=50)
    with pytest.raises(IntegrityError), transaction.atomic():
        Recording.objects.create(cohort=cohort, name="U-1", sha256="2" * 64, source_filename="b.edf",
                                 file_format="EDF", duration_s=30, mains_hz=50)


# --- dates and ages -------------------------------------------------------------------------------


def test_the_date_policy_shifts_by_a_secret_cohort_offset_or_drops(db, tiny_folder, make_user, client):
    Cohort.objects.create(name="Dropped", date_policy=Cohort.DROP_DATES)
    dropped = cli_import(tiny_edf(tiny_folder, "night.edf", 1), "Dropped")
    shifted = cli_import(tiny_edf(tiny_folder, "night.edf", 2), "Shifted")
    measured = datetime(2024, 1, 1, 23, 0, tzinfo=timezone.utc)
    assert dropped.start_time is None and dropped.measured_at == measured
    offset = shifted.cohort.date_shift_days
    assert offset <= -365 and shifted.start_time == measured + timedelta(days=offset)
    assert shifted.start_time.time() == measured.time()  # whole days: the clock time stays
    client.force_login(make_user(RESEARCHER))  # reaches every cohort (a rater only those of their campaigns)
    cohorts = client.get("/api/cohorts/").json()["results"]
    assert {c["name"]: c["date_policy"] for c in cohorts} == {"Dropped": Cohort.DROP_DATES,
                                                              "Shifted": Cohort.SHIFT_DATES}
    assert all("date_shift_days" not in c and offset not in c.values() for c in cohorts)  # the offset stays secret


def test_ages_above_89_are_stored_as_90(db, tiny_folder):
    old = cli_import(tiny_edf(tiny_folder, "night.edf", 1, patient="X F 02-FEB-1921 X"), "Ages")
    young = cli_import(tiny_edf(tiny_folder, "night.edf", 2, patient="X M 02-JAN-1934 X"), "Ages")
    unknown = cli_import(tiny_edf(tiny_folder, "night.edf", 3), "Ages")
    assert (old.subject_age, young.subject_age, unknown.subject_age) == (90, 89, None)
    assert identity.capped_age(date(1934, 1, 2), date(2024, 1, 1)) == 89


def test_epoch_pages_show_clock_times_from_the_recording_start(db, doe_files, make_user, client):
    recording = import_doe(doe_files).recording
    rater = make_user(RATER)
    create_campaign("Clock", recordings=[recording], overlap=1, raters=[rater])
    client.force_login(rater)
    html = client.get(f"/recordings/{recording.pk}/epochs/4/").content.decode()
    assert "0:02:00 from recording start" in html and "23:0" not in html


# --- the scanner ----------------------------------------------------------------------------------


def test_identity_terms_from_the_header_and_the_file_name():
    terms = identity.identity_terms(source_filename=FILE, patient=PATIENT, recording=RECORDING_FIELD, measured=MEASURED)
    for text, kind in [("Jane", "patient name"), ("mch-0234567", "patient code"), ("03/14/1962", "birth date"),
                       ("14 March 1962", "birth date"), ("EMR-88123", "hospital administration code"),
                       ("17.05.23", "measurement date"), ("20230517", "measurement date")]:
        assert [k for _, _, k in terms.spans(f"x {text} y")] == [kind], text
    for innocent in ["Janet", "0.1962", "N2.1, W.2", "01-03-0006", "amplitude 1962 uV"]:
        assert terms.spans(innocent) == [], innocent
    assert identity.identity_terms(source_filename="01-03-0006 PSG.edf").kinds == {}
    assert identity.identity_terms(source_filename="SC4001E0-PSG.edf").kinds == {}
    dated = identity.identity_terms(source_filename="smith_anna_20240101.edf")
    assert set(dated.kinds) >= {"smith", "anna", "2024-01-01"}  # a dated file name: every word is taken for a name
    text, found = identity.redact("Lights off 22:41, Dr Meyer; DOB 1962-03-14", terms)
    assert text == "Lights off 22:41, [redacted]; DOB [redacted]"
    assert found == ["'Dr Meyer' (title and name)", "'1962-03-14' (birth date)", "'1962-03-14' (date)"]


def test_a_separate_edf_hypnogram_is_scanned_too(db, tiny_folder):
    psg = tiny_edf(tiny_folder, "night.edf", 9)
    hypnogram = tiny_edf(tiny_folder, "night Base.edf", 9, notes=((30.0, "called Mrs Smith on 02.03.2024"),))
    recording = cli_import(psg, "Hyp", "--hypnogram", str(hypnogram))
    assert recording.identity_findings == ["hypnogram annotation at 30 s: 'Mrs Smith' (title and name), '02.03.2024' "
                                           "(date) (annotation texts are not stored)"]


# --- releases -------------------------------------------------------------------------------------


def release_files(release) -> dict[str, str]:
    """Every file of a built release as text, the archives' members included (Parquet cells as text)."""
    out = {}

    def add(name, data):
        if name.endswith(".parquet"):
            out[name] = repr(pq.read_table(io.BytesIO(data)).to_pylist())
        elif name.endswith(".png"):
            out[name] = ""
        else:
            out[name] = data.decode("utf-8")

    for row in release.files.all():
        with default_storage.open(row.storage_name, "rb") as handle:
            data = handle.read()
        if row.path.endswith(".tar.gz"):
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
                for member in archive.getmembers():
                    add(f"{row.path}:{member.name}", archive.extractfile(member).read())
        elif row.path.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for name in archive.namelist():
                    add(f"{row.path}:{name}", archive.read(name))
        else:
            add(row.path, data)
    return out


def campaigns_with_answers(recording, make_user):
    rater = make_user(RATER)
    # an open scoring campaign: a blind one would hold the rating items back until it is scored
    scoring = create_campaign("Privacy scoring", recordings=[recording], overlap=1, raters=[rater],
                              show_reference=True, show_model_outputs=True)
    for item in scoring.items.order_by("position")[:3]:
        Label.objects.create(item=item, rater=rater, stage="N2", client_id=uuid.uuid4())
    return scoring


def build(version, **options) -> Release:
    release = builds.create_release("privacy", version, queue=False, **{"cohorts": [COHORT], **options})
    return builds.build_release(release.pk)


def test_a_built_release_holds_no_name_or_date(db, doe_files, make_user):
    recording = import_doe(doe_files).recording
    scoring = campaigns_with_answers(recording, make_user)
    release = build("1.0.0", scoring_campaigns=[scoring.name], include_images=True)
    assert release.state == Release.SUCCEEDED, release.error
    files = release_files(release)
    assert "annotations/coarse/PT-0001.csv" in files
    assert any(name.startswith("privacy-1.0.0.zip:privacy-1.0.0/images/PT-0001/") for name in files)
    assert "[redacted] moved" in files["annotations/fine/PT-0001.csv"]
    assert {name: leaks(name + "\n" + text) for name, text in files.items() if leaks(name + "\n" + text)} == {}


def test_the_phi_scan_stops_a_release_whose_subject_was_renamed_after_the_patient(db, doe_files):
    recording = import_doe(doe_files).recording
    Recording.objects.filter(pk=recording.pk).update(name="Doe_Jane")  # a curator forces the name back in
    release = build("2.0.0")
    assert release.state == Release.FAILED
    kind = f"'Doe' (patient name of recording #{recording.pk}), 'Jane' (patient name of recording #{recording.pk})"
    assert f"privacy-2.0.0/annotations/coarse/Doe_Jane.csv, file name: {kind}" in release.error
    assert f"privacy-2.0.0/annotations/coarse/Doe_Jane.csv, row 1, field custom_id: {kind}" in release.error
    assert release.error.startswith("PHI scan: ") and "nothing was stored" in release.error
    assert release.files.count() == 0 and not default_storage.exists(f"releases/{release.pk}")


def test_the_phi_scan_stops_a_release_whose_texts_name_the_patient(db, doe_files):
    recording = import_doe(doe_files).recording
    epoch = recording.epochs.exclude(reference_rationale="").order_by("index").last()
    Epoch.objects.filter(pk=epoch.pk).update(reference_rationale="Spindles; Jane turned over at 23:10.")
    release = build("3.0.0", description="Night of 17.05.2023 at the lab.")
    assert release.state == Release.FAILED
    who = f"of recording #{recording.pk}"
    assert f"privacy-3.0.0/annotations/fine/PT-0001.csv, row 3, field reasoning_text: 'Jane' (patient name {who})" \
        in release.error
    assert "privacy-3.0.0/annotations/parquet/fine.parquet, row 3, field reasoning_text: 'Jane'" in release.error
    assert re.search(rf"privacy-3\.0\.0/README\.md, line \d+: '17\.05\.2023' \(measurement date {who}\)", release.error)
    assert release.files.count() == 0


# --- the original file --------------------------------------------------------------------------


def test_the_original_psg_is_not_kept_by_default(db, tiny_folder, media_root):
    recording = cli_import(tiny_edf(tiny_folder, FILE, 7, patient=PATIENT), "Originals")
    assert recording.original_file == "" and not (media_root / "originals").exists()


def test_a_kept_original_is_stored_apart_and_only_admins_download_it(db, tiny_folder, settings, media_root,
                                                                     role_client):
    settings.KEEP_ORIGINAL_PSG = True
    path = tiny_edf(tiny_folder, FILE, 7, patient=PATIENT)
    job = imports.submit_upload(upload=SimpleUploadedFile(FILE, path.read_bytes()), cohort="Originals")
    job = imports.run_job(job.pk)
    recording = job.recording
    assert recording.original_file.startswith("originals/") and FILE not in recording.original_file
    assert not default_storage.exists(job.source_path)  # the upload itself is gone
    url = f"/recordings/{recording.pk}/original/"
    for role in (RATER, CURATOR):
        assert role_client(role).get(url).status_code == 403, role
    response = role_client(ADMIN).get(url)
    assert response.status_code == 200 and b"".join(response.streaming_content) == path.read_bytes()
    assert FILE in response["Content-Disposition"]


# --- existing rows ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_existing_recordings_subject_ids_and_shifted_dates():
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("datasets", "0005_job_lease")], [("datasets", "0007_pseudonymous_subject_ids")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    OldCohort, OldRecording = apps.get_model("datasets", "Cohort"), apps.get_model("datasets", "Recording")
    cohort = OldCohort.objects.create(name="Old clinic")
    measured = datetime(2023, 5, 17, 23, 0, tzinfo=timezone.utc)
    for i, name in enumerate(["Doe_Jane_1962-03-14", "01-03-0006 PSG", "night"]):
        OldRecording.objects.create(cohort=cohort, name=name, sha256=str(i) * 64, source_filename=f"{name}.edf",
                                    file_format="EDF+", duration_s=30, mains_hz=50, start_time=measured)
    executor = MigrationExecutor(connection)
    executor.migrate(after)
    apps = executor.loader.project_state(after).apps
    cohort = apps.get_model("datasets", "Cohort").objects.get(name="Old clinic")
    rows = apps.get_model("datasets", "Recording").objects.order_by("pk")
    assert [(r.name, r.source_filename) for r in rows] == [("OC-0001", "Doe_Jane_1962-03-14.edf"),
                                                           ("01-03-0006", "01-03-0006 PSG.edf"), ("OC-0002", "night.edf")]
    assert cohort.subject_prefix == "OC" and cohort.next_subject_number == 3 and cohort.date_shift_days <= -365
    assert all(r.measured_at == measured and r.start_time == measured + timedelta(days=cohort.date_shift_days)
               for r in rows)
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
