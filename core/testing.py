"""Shared test classes, in the manner of NetBox's view and API test cases.

Declare each page or endpoint once, with the outcome expected for every role; the test cases are
generated, one per (page or endpoint, role):

    class TestDatasetPages(RoleAccessTests):
        cases = [Access("recording page", "datasets:recording", lambda w: f"/recordings/{w.recording.pk}/",
                        expect=everyone(200))]

Every test gets the `access_world` fixture (a small database with one object of every kind, see
`build_world`) and a client logged in with the role (anonymous: not logged in). Test-only module.
"""
from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from types import SimpleNamespace
from typing import Callable, Iterable

import numpy as np
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.shortcuts import resolve_url
from django.utils import timezone
from rest_framework.test import APIClient

from core.roles import ADMIN, CURATOR, RATER, RESEARCHER

ANONYMOUS = "anonymous"
EVERY_ROLE = (ANONYMOUS, RATER, CURATOR, RESEARCHER, ADMIN)
LOGIN_REDIRECT = 302  # pages send anonymous users to the login page
API_ANONYMOUS = 403  # DRF with session auth first: 403 for unauthenticated requests


def expect(ok: int, roles: Iterable[str], *, denied: int = 403, anonymous: int = LOGIN_REDIRECT) -> dict[str, int]:
    """`ok` for the named roles, `denied` for the other signed-in roles, `anonymous` for no login."""
    roles = set(roles)
    return {role: ok if role in roles else denied for role in EVERY_ROLE if role != ANONYMOUS} | {ANONYMOUS: anonymous}


def everyone(ok: int = 200, *, anonymous: int = LOGIN_REDIRECT) -> dict[str, int]:
    return expect(ok, EVERY_ROLE, anonymous=anonymous)


@dataclass(frozen=True)
class Access:
    """One page or endpoint: its route name, how to build its URL from the world, what each role gets."""

    name: str
    route: str  # URL name (namespace:name), so coverage of every route can be checked
    url: Callable[[SimpleNamespace], str]
    expect: dict[str, int]
    method: str = "get"
    data: Callable[[SimpleNamespace], dict] | None = None
    api: bool = False
    extra: dict = field(default_factory=dict)  # passed to the client call (e.g. format="json")
    # Where a redirect must lead, per role: how its Location starts. Pages that send anonymous users
    # away must send them to the login page, unless the anonymous entry here says otherwise.
    location: dict[str, str] = field(default_factory=dict)
    # Further checks after the status: after(world, client, response, role), e.g. that a form came back
    # with errors or that the session now belongs to someone.
    after: Callable[[SimpleNamespace, object, object, str], None] | None = None


class RoleAccessTests:
    """Subclass with `cases`; `test_access` is generated with one parameter set per (case, role)."""

    cases: tuple[Access, ...] | list[Access] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        params = [pytest.param(case, role, id=f"{case.name}-{role}") for case in cls.cases for role in EVERY_ROLE]

        @pytest.mark.django_db
        @pytest.mark.parametrize(("case", "role"), params)
        def test_access(self, case: Access, role: str, access_world):
            client = client_for(role, api=case.api)
            url = case.url(access_world)
            data = case.data(access_world) if case.data else None
            response = getattr(client, case.method)(url, data, **case.extra) if data is not None else \
                getattr(client, case.method)(url, **case.extra)
            expected = case.expect[role]
            assert response.status_code == expected, (
                f"{case.method.upper()} {url} as {role}: {response.status_code}, expected {expected}"
            )
            location = case.location.get(role)
            if location is None and role == ANONYMOUS and expected == LOGIN_REDIRECT and not case.api:
                location = resolve_url(settings.LOGIN_URL)
            if location is not None and 300 <= expected < 400:
                assert response["Location"].startswith(location), (
                    f"{case.method.upper()} {url} as {role}: redirected to {response['Location']}, expected {location}"
                )
            if case.after is not None:
                case.after(access_world, client, response, role)

        cls.test_access = test_access


def make_role_user(role: str, username: str | None = None):
    user = get_user_model().objects.create_user(username or f"{role}-user", password="pw-for-tests-123")
    user.groups.add(Group.objects.get(name=role))
    if role == ADMIN:
        user.is_staff = user.is_superuser = True
        user.save()
    return user


def client_for(role: str, *, api: bool = False):
    from django.test import Client

    client = APIClient() if api else Client()
    if role != ANONYMOUS:
        username = f"matrix-{role}"
        user = get_user_model().objects.filter(username=username).first() or make_role_user(role, username)
        client.force_login(user)
    return client


def build_world() -> SimpleNamespace:
    """One object of every kind, small enough to build for each test: a cohort with a 3-epoch recording
    with images, an empty cohort, a model version with predictions (so frozen), a finished inference job,
    a failed import, and a scoring campaign over the 3 epochs whose rater is the matrix rater
    ("matrix-rater", who holds a reservation of the first item and so reaches the recording) and whose
    second item has two disagreeing labels. Every user's password is "pw-for-tests-123"."""
    from datasets.constants import DERIVATIONS, EPOCH_SAMPLES
    from datasets.models import Cohort, Epoch, EpochImage, ImportJob, Recording
    from datasets.services import storage
    from datasets.services.rendering import render_model_image
    from inference.models import InferenceJob, ModelVersion, Prediction

    rng = np.random.default_rng(0)
    signals = (rng.standard_normal((len(DERIVATIONS), 3 * EPOCH_SAMPLES)) * 20).astype(np.float32)
    signal_name, _, _ = storage.save_array(signals)
    native_name, _, _ = storage.save_array((signals.repeat(2, axis=1) * 10).astype(np.int16), prefix="native")  # 200 Hz
    cohort = Cohort.objects.create(name="World")
    empty_cohort = Cohort.objects.create(name="Empty")  # no recordings: it may be deleted
    recording = Recording.objects.create(
        cohort=cohort, name="SC4001E0", sha256="ab" * 32, source_filename="SC4001E0-PSG.edf", file_format="EDF+",
        duration_s=90, mains_hz=50, derivations=list(DERIVATIONS), signal_file=signal_name, epoch_count=3,
        native_signal_file=native_name, native_sfreq=200.0, native_scale_uv=[0.1] * len(DERIVATIONS),
        hypnogram_format="edf+", hypnogram_source="/data/sleep-edf/SC4001EC-Hypnogram.edf",
        hypnogram_notes=["epochs 0-2 unscored before lights off"],
    )
    epochs = []
    for index, stage in enumerate(("W", "N2", "R")):
        epoch = Epoch.objects.create(recording=recording, index=index, onset_s=30.0 * index, stage=stage,
                                     reference_rules=[f"{stage}.1"], reference_rationale=f"reference rationale {index}")
        png = render_model_image(signals[:, index * EPOCH_SAMPLES:(index + 1) * EPOCH_SAMPLES], DERIVATIONS)
        name, sha, _ = storage.save_content_addressed(png, "epochs", "png")
        EpochImage.objects.create(epoch=epoch, kind=EpochImage.MODEL, sha256=sha, storage_name=name, width=448, height=224)
        epochs.append(epoch)
    version = ModelVersion.objects.create(name="secret-model-v7", backend=ModelVersion.BASELINE)
    job = InferenceJob.objects.create(model_version=version, recording=recording, state=InferenceJob.SUCCEEDED, total=3, done=3)
    prediction = Prediction.objects.create(epoch=epochs[1], model_version=version, job=job, status=Prediction.OK,
                                           stage="N2", rule_ids=["N2.1"], rationale="model rationale", version_hash="0" * 64)
    import_job = ImportJob.objects.create(cohort_name="World", source_name="SC4001E0-PSG.edf", state=ImportJob.FAILED,
                                          error="internal error: disk full", source_in_storage=True,
                                          source_path="uploads/0/SC4001E0-PSG.edf")
    from annotation.models import Label, Reservation
    from annotation.services.campaigns import create_campaign

    matrix_rater = make_role_user(RATER, f"matrix-{RATER}")
    other_raters = [make_role_user(RATER, f"world-rater-{i}") for i in (1, 2)]
    campaign = create_campaign("World campaign", recordings=[recording], overlap=2,
                               raters=[matrix_rater, *other_raters])
    items = list(campaign.items.order_by("position"))
    Reservation.objects.create(item=items[0], slot=0, rater=matrix_rater, expires_at=timezone.now() + timedelta(hours=1))
    for slot, (rater, stage) in enumerate(zip(other_raters, ("N2", "N3"))):
        Reservation.objects.create(item=items[1], slot=slot, rater=rater, labelled=True, expires_at=timezone.now())
        Label.objects.create(item=items[1], rater=rater, stage=stage, client_id=uuid.uuid4())
    from ratings.models import RatingReservation
    from ratings.services.campaigns import create_rating_campaign

    rating_campaign = create_rating_campaign("World rating", cohorts=[cohort], model_versions=[version],
                                             raters=[matrix_rater, other_raters[0]], overlap=2)
    rating_item = rating_campaign.items.get()
    RatingReservation.objects.create(item=rating_item, slot=0, rater=matrix_rater,
                                     expires_at=timezone.now() + timedelta(hours=1))
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from releases.models import Release, ReleaseFile

    release = Release.objects.create(name="world", version="1.0.0", state=Release.SUCCEEDED, epochs=3)
    release.cohorts.set([cohort])
    body = b"custom_id,Subject,N,Stage,applicable_rules\n"
    stored = default_storage.save(f"releases/{release.pk}/annotations/coarse/world.csv", ContentFile(body))
    ReleaseFile.objects.create(release=release, path="annotations/coarse/world.csv", storage_name=stored,
                               size=len(body), sha256=hashlib.sha256(body).hexdigest())
    from core.models import ChangeRecord

    campaign_record = ChangeRecord.objects.get(object_type="annotation.scoringcampaign", object_id=str(campaign.pk))
    return SimpleNamespace(cohort=cohort, empty_cohort=empty_cohort, campaign_record=campaign_record, recording=recording, epochs=epochs,
                           epoch=epochs[1], version=version, job=job, prediction=prediction, import_job=import_job,
                           image=EpochImage.objects.get(epoch=epochs[1]), campaign=campaign, items=items,
                           rater=matrix_rater, rating_campaign=rating_campaign, rating_item=rating_item,
                           release=release)
