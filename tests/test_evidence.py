"""Rationale evidence check: each checked rule on synthetic epochs built to satisfy and to violate it, the baseline
and the check reading one set of measurements, verdicts stored on predictions and rating items, the opt-in panel
served alike for both origins, and the contradicted share with its Spearman correlation in the statistics."""
import uuid
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.template import Context, Template
from rest_framework.test import APIClient
from scipy import signal as sps
from scipy.stats import spearmanr

from core.roles import CURATOR, RATER, RESEARCHER
from datasets.constants import EPOCH_SAMPLES
from datasets.services.storage import save_array
from inference.models import ModelVersion, Prediction
from inference.services import baseline
from inference.services.evidence import (CONTRADICTED, NOT_MEASURABLE, SUPPORTED, check_epoch, check_rationales,
                                         is_contradicted)
from inference.services.jobs import start_job
from inference.services.measurements import NightMeasurements, epoch_span, measure_night
from ratings.models import RatingItem
from ratings.services.campaigns import create_rating_campaign, update_rating_campaign
from ratings.services.statistics import campaign_statistics
from tests.factories import make_recording
from tests.test_browser import browser  # noqa: F401  (fixture)
from tests.test_rating_blinding import serve_everything

SF = 100
N_EPOCHS = 40
DERIVATIONS = ("F4-M1", "C4-M1", "O2-M1", "LOC", "ROC", "Chin EMG")
# epoch -> what it was built with (every other epoch: background EEG and EOG, chin EMG at its usual level)
N3_SATISFIED, N3_VIOLATED = 5, 8  # 15 s of 160 µV p-p 1-Hz waves on F4-M1; 2.5 s of them
W1_SATISFIED, W1_VIOLATED = 11, 14  # 10-Hz alpha over all of O2-M1; none
N2_SATISFIED, N2_VIOLATED = 17, 20  # a 13-Hz spindle at 5 s on C4-M1; none (nor in the previous epoch)
REM_LOW_CHIN, REM_HIGH_CHIN, LOW_CHIN_NO_REM, HIGH_CHIN = 23, 26, 29, 32


def _pink(rng, n, rms):
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SF)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0
    x = sps.sosfiltfilt(sps.butter(4, [0.3, 35], "bandpass", fs=SF, output="sos"), np.fft.irfft(spectrum, n))
    return x / x.std() * rms


def synthetic_night(seed=3) -> np.ndarray:
    """40 prepared epochs (µV, 100 Hz, rows in DERIVATIONS order) with the waveforms listed above."""
    rng = np.random.default_rng(seed)
    x = {d: _pink(rng, N_EPOCHS * EPOCH_SAMPLES, 8.0) for d in DERIVATIONS[:5]}
    x["Chin EMG"] = rng.standard_normal(N_EPOCHS * EPOCH_SAMPLES) * 20.0

    def at(epoch, second):
        return epoch * EPOCH_SAMPLES + int(second * SF)

    def add(derivation, epoch, second, wave):
        x[derivation][at(epoch, second):at(epoch, second) + len(wave)] += wave

    def seconds(s):
        return np.arange(int(s * SF)) / SF

    for epoch, length in ((N3_SATISFIED, 15.0), (N3_VIOLATED, 2.5)):
        add("F4-M1", epoch, 2, 80.0 * np.sin(2 * np.pi * seconds(length)))
    add("O2-M1", W1_SATISFIED, 0, 25.0 * np.sin(2 * np.pi * 10 * seconds(30)))
    add("C4-M1", N2_SATISFIED, 5, 25.0 * np.sin(2 * np.pi * 13 * seconds(1.2)) * np.hanning(120))
    t = seconds(2) - 0.3
    saccade = 150.0 / (1 + np.exp(-t / 0.03)) * np.exp(-np.clip(t, 0, None) / 0.5)  # sharp rise, slow return
    for epoch in (REM_LOW_CHIN, REM_HIGH_CHIN):
        for second in (3, 9, 15, 21):
            add("LOC", epoch, second, saccade)
            add("ROC", epoch, second, -saccade)
    for epoch in (REM_LOW_CHIN, LOW_CHIN_NO_REM):
        x["Chin EMG"][at(epoch, 0):at(epoch + 1, 0)] *= 0.15
    return np.vstack([x[d] for d in DERIVATIONS]).astype(np.float32)


STARTS = tuple(i * EPOCH_SAMPLES for i in range(N_EPOCHS))


@pytest.fixture(scope="module")
def signals():
    return synthetic_night()


@pytest.fixture(scope="module")
def measured(signals) -> NightMeasurements:
    return measure_night(epoch_span(signals, DERIVATIONS, STARTS))


def verdict(m, epoch, rule):
    (checked,) = check_epoch(m, epoch, [rule])["rules"]
    return checked


@pytest.mark.parametrize("epoch, rule, expected, criterion_met", [
    (N3_SATISFIED, "N3.1", SUPPORTED, [True]),
    (N3_VIOLATED, "N3.1", CONTRADICTED, [False]),
    (W1_SATISFIED, "W.1", SUPPORTED, [True]),
    (W1_VIOLATED, "W.1", CONTRADICTED, [False]),
    (N2_SATISFIED, "N2.1", SUPPORTED, [True, True]),
    (N2_VIOLATED, "N2.1", CONTRADICTED, [False, True]),
    (N3_SATISFIED, "N2.1", CONTRADICTED, [False, False]),  # N3 met: slow waves >= 20%
    (REM_LOW_CHIN, "R.1", SUPPORTED, [True, True]),
    (REM_HIGH_CHIN, "R.1", CONTRADICTED, [True, False]),  # REMs, chin EMG not low for the night
    (LOW_CHIN_NO_REM, "R.1", CONTRADICTED, [False, True]),  # low chin, no REMs
    (LOW_CHIN_NO_REM, "R.2", SUPPORTED, [True]),
    (HIGH_CHIN, "R.2", CONTRADICTED, [False]),
])
def test_each_checked_rule_on_an_epoch_that_satisfies_and_one_that_violates_it(measured, epoch, rule, expected,
                                                                                criterion_met):
    checked = verdict(measured, epoch, rule)
    assert checked["verdict"] == expected, checked
    assert [c["met"] for c in checked["criteria"]] == criterion_met
    assert all(c["threshold"] and c["value_text"] and c["channel"] for c in checked["criteria"])


def test_measured_values_and_thresholds(measured):
    (share,) = verdict(measured, N3_SATISFIED, "N3.1")["criteria"]
    assert share["channel"] == "F4-M1" and share["threshold"] == "≥ 20 %"
    assert share["value"] == pytest.approx(0.5, abs=0.06) and share["value_text"] == f"{share['value'] * 100:.0f} %"
    assert verdict(measured, N3_VIOLATED, "N3.1")["criteria"][0]["value"] < 0.2
    (alpha,) = verdict(measured, W1_SATISFIED, "W.1")["criteria"]
    assert alpha["value"] == 15 and alpha["threshold"] == "> 50 % (8 of 15)" and alpha["channel"] == "O2-M1"
    rems, chin = verdict(measured, REM_LOW_CHIN, "R.1")["criteria"]
    assert rems["value"] == 4 and chin["channel"] == "Chin EMG" and chin["value"] <= 25


def test_summary_and_rules_the_signal_cannot_settle(measured):
    evidence = check_epoch(measured, N3_SATISFIED, ["N3.1", "N2.1", "N1.1", "N3.1"])
    assert [r["rule"] for r in evidence["rules"]] == ["N3.1", "N2.1", "N1.1"]  # each cited rule once, as cited
    assert evidence["rules"][2]["verdict"] == NOT_MEASURABLE and evidence["rules"][2]["note"].startswith("not checked")
    assert evidence["summary"] == {"verdict": CONTRADICTED, "supported": 1, "contradicted": 1, "not_measurable": 1}
    assert is_contradicted(evidence)
    supported = check_epoch(measured, N3_SATISFIED, ["N3.1"])
    assert supported["summary"]["verdict"] == SUPPORTED and not is_contradicted(supported)
    assert check_epoch(measured, 0, [])["summary"]["verdict"] == "no rules cited"


def test_missing_derivations_make_their_rules_not_measurable(signals):
    keep = [0, 1, 3]  # F4-M1, C4-M1, LOC: no occipital alpha, no eye pair, no chin
    m = measure_night(epoch_span(signals[keep], [DERIVATIONS[k] for k in keep], STARTS))
    assert verdict(m, W1_SATISFIED, "W.1")["verdict"] == NOT_MEASURABLE
    assert verdict(m, REM_LOW_CHIN, "R.1")["verdict"] == NOT_MEASURABLE
    assert verdict(m, LOW_CHIN_NO_REM, "R.2")["verdict"] == NOT_MEASURABLE
    assert verdict(m, N3_SATISFIED, "N3.1")["verdict"] == SUPPORTED  # still measured


def test_the_baseline_reads_the_same_measurements(signals, measured):
    analysis = baseline.analyse_night(signals, DERIVATIONS, STARTS)
    assert isinstance(analysis, NightMeasurements)
    assert np.array_equal(analysis.sw_share, measured.sw_share)
    assert analysis.spindles == measured.spindles and analysis.rems == measured.rems
    assert np.array_equal(analysis.chin_percentile, measured.chin_percentile)
    assert not any(hasattr(baseline, name) for name in ("_slow_waves", "_spindles", "_eyes", "_chin"))  # one copy
    for i in range(N_EPOCHS):  # what the baseline cites from its measurements, the check never contradicts
        cited = baseline.explain_epoch(analysis, i)["applicable_rules"]
        assert not is_contradicted(check_epoch(measured, i, cited)), (i, cited)


# --- stored verdicts: jobs, the command, rating items --------------------------------------------


@pytest.fixture
def recording(db, signals):
    recording = make_recording("Evidence", "synthetic", ["N2"] * N_EPOCHS)
    recording.signal_file, _, _ = save_array(signals)
    recording.derivations = list(DERIVATIONS)
    recording.save()
    return recording


def test_inference_jobs_store_the_verdicts(recording, measured):
    version = ModelVersion.objects.create(name="baseline-evidence", backend=ModelVersion.BASELINE)
    start_job(version, recording=recording, inline=True)
    parsed = list(Prediction.objects.filter(model_version=version).exclude(stage="").select_related("epoch"))
    assert len(parsed) == N_EPOCHS - 2  # the first and last epochs lack three-image context
    for p in parsed:
        assert p.evidence == check_epoch(measured, p.epoch.index, p.rule_ids)
    n3 = next(p for p in parsed if p.epoch.index == N3_SATISFIED)
    assert "N3.1" in n3.rule_ids and n3.evidence["rules"][n3.rule_ids.index("N3.1")]["verdict"] == SUPPORTED


def test_check_evidence_command_fills_existing_predictions(recording):
    version = ModelVersion.objects.create(name="old", backend=ModelVersion.BASELINE)
    epochs = {e.index: e for e in recording.epochs.all()}
    rows = {N3_VIOLATED: ["N3.1"], W1_SATISFIED: ["W.1"], HIGH_CHIN: ["R.2", "N2.2"]}
    Prediction.objects.bulk_create([Prediction(epoch=epochs[i], model_version=version, status=Prediction.OK,
                                               stage="N3", rule_ids=rules, version_hash="x") for i, rules in rows.items()])
    Prediction.objects.create(epoch=epochs[0], model_version=version, status=Prediction.FAILED, version_hash="x")
    call_command("check_evidence", "--model", "old")
    stored = dict(Prediction.objects.filter(model_version=version).values_list("epoch__index", "evidence"))
    assert stored[0] == {}  # a parse failure cites nothing to check
    assert [stored[i]["summary"]["verdict"] for i in rows] == [CONTRADICTED, SUPPORTED, CONTRADICTED]
    assert stored[HIGH_CHIN]["rules"][1]["verdict"] == NOT_MEASURABLE


def test_epoch_page_shows_the_verdicts_to_curators_and_researchers(recording, make_user, rf):
    version = ModelVersion.objects.create(name="shown", backend=ModelVersion.BASELINE)
    epoch = recording.epochs.get(index=N3_VIOLATED)
    Prediction.objects.create(epoch=epoch, model_version=version, status=Prediction.OK, stage="N3",
                              rule_ids=["N3.1"], rationale="Slow waves.", version_hash="x")
    call_command("check_evidence")
    panel = Template("{% load predictions %}{% epoch_predictions epoch %}")  # the epoch page's model outputs
    for role in (CURATOR, RESEARCHER, RATER):
        request = rf.get("/")
        request.user = make_user(role, f"{role}-panel")
        html = panel.render(Context({"request": request, "epoch": epoch}))
        shown = 'Evidence check: <span class="verdict verdict-contradicted">contradicted</span>' in html
        assert shown == (role != RATER), role  # raters see no model outputs at all
        assert ("N3.1 contradicted" in html and "needs ≥ 20 %" in html) == (role != RATER)


def _items_of_both_origins(recording, make_user, show_evidence):
    version = ModelVersion.objects.create(name="model-x", backend=ModelVersion.BASELINE)
    cited = {N3_SATISFIED: ["N3.1"], N3_VIOLATED: ["N3.1"], W1_VIOLATED: ["W.1"], REM_LOW_CHIN: ["R.1", "R.2"],
             HIGH_CHIN: ["R.2"], N2_SATISFIED: ["N2.1"]}
    for epoch in recording.epochs.filter(index__in=cited):
        Prediction.objects.create(epoch=epoch, model_version=version, status=Prediction.OK, stage="N2",
                                  rule_ids=cited[epoch.index], rationale="Text.", version_hash="x")
        epoch.reference_rules = cited[epoch.index][::-1]  # MASS-EX order need not be the catalog's
        epoch.reference_rationale = "Expert text."
        epoch.save()
    raters = [make_user(RATER, "ann"), make_user(RATER, "bob")]
    campaign = create_rating_campaign("evidence", cohorts=["Evidence"], model_versions=["model-x"],
                                      expert_sources=["massex"], raters=raters, overlap=2,
                                      show_evidence=show_evidence)
    return campaign, raters, cited


def test_rating_items_of_both_origins_carry_the_same_check(recording, make_user):
    campaign, _, cited = _items_of_both_origins(recording, make_user, show_evidence=False)
    items = list(campaign.items.select_related("epoch"))
    assert {i.origin for i in items} == {RatingItem.MODEL, RatingItem.EXPERT} and len(items) == 2 * len(cited)
    for item in items:
        expected = check_rationales([(recording.pk, item.epoch.index, item.rule_ids)])[0]
        assert item.evidence == expected


def test_opted_in_rating_page_serves_the_panel_alike_for_both_origins(recording, make_user):
    campaign, (ann, _), cited = _items_of_both_origins(recording, make_user, show_evidence=True)
    origins = dict(campaign.items.values_list("pk", "origin"))
    served = serve_everything(campaign, ann)
    assert sorted(row["item"] for row in served) == sorted(origins)
    key_sets = {origins[row["item"]]: set() for row in served}
    for row in served:
        evidence = row["evidence"]
        assert [r["rule"] for r in evidence["rules"]] == [r["id"] for r in row["rules"]]  # served rule order
        key_sets[origins[row["item"]]].add((tuple(row), tuple(evidence), tuple(evidence["summary"]),
                                            *{tuple(r) for r in evidence["rules"]},
                                            *{tuple(c) for r in evidence["rules"] for c in r["criteria"]}))
    assert len(key_sets[RatingItem.MODEL]) == len(key_sets[RatingItem.EXPERT]) == 1
    assert key_sets[RatingItem.MODEL] == key_sets[RatingItem.EXPERT]
    by_epoch = {}
    for row in served:
        by_epoch.setdefault(row["index"], []).append(row["evidence"])
    assert all(a == b for a, b in by_epoch.values())  # the same rules on the same epoch: the same panel
    assert by_epoch[N3_VIOLATED][0]["summary"]["verdict"] == CONTRADICTED

    update_rating_campaign(campaign, show_evidence=False)
    bob_api = APIClient()
    bob_api.force_authenticate(campaign.raters.get(username="bob"))
    row = bob_api.post(f"/api/ratings/campaigns/{campaign.pk}/next/").json()
    assert row["evidence"] is None  # not opted in: no panel, for any origin


def test_rating_page_has_the_panel_only_where_the_campaign_opts_in(recording, make_user, client):
    campaign, (ann, _), _ = _items_of_both_origins(recording, make_user, show_evidence=False)
    client.force_login(ann)
    assert 'id="item-evidence"' not in client.get(f"/rating/{campaign.pk}/rate/").content.decode()
    update_rating_campaign(campaign, show_evidence=True)
    assert 'id="item-evidence"' in client.get(f"/rating/{campaign.pk}/rate/").content.decode()


def test_statistics_carry_the_contradicted_share_and_its_spearman_correlation(recording, make_user, role_client):
    campaign, raters, cited = _items_of_both_origins(recording, make_user, show_evidence=False)
    accuracy = next(d["key"] for d in campaign.rubric.dimensions if "accura" in d["key"])
    items = list(campaign.items.order_by("position"))
    rng = np.random.default_rng(0)
    for rater in raters:
        api = APIClient()
        api.force_authenticate(rater)
        for item in items:
            served = api.post(f"/api/ratings/campaigns/{campaign.pk}/next/").json()
            scores = {key: int(rng.integers(1, 6)) for key in campaign.rubric.keys}
            response = api.post(f"/api/ratings/campaigns/{campaign.pk}/ratings/",
                                {"item": served["item"], "scores": scores, "client_id": str(uuid.uuid4()),
                                 "seconds_spent": 9}, format="json")
            assert response.status_code in (200, 201), response.content
    stats = campaign_statistics(campaign)["contradicted"]

    items = list(campaign.items.all())
    model = [i for i in items if i.origin == RatingItem.MODEL]
    contradicted_model = sum(is_contradicted(i.evidence) for i in model)
    assert contradicted_model == 3  # N3.1 on 2.5 s of slow waves, W.1 without alpha, R.2 with the chin high
    assert stats["by_source"]["model-x"] == {"rationales": 6, "contradicted": 3, "share": 0.5}
    assert stats["by_source"]["expert: massex"]["contradicted"] == 3
    assert stats["by_source_stage"]["model-x"]["N2"]["share"] == 0.5
    assert stats["overall"] == {"rationales": 12, "contradicted": 6, "share": 0.5}

    means = {i.pk: np.mean([r.scores[accuracy] for r in i.ratings.all()]) for i in items}
    rho, p = spearmanr([float(is_contradicted(i.evidence)) for i in items], [means[i.pk] for i in items])
    assert stats["accuracy_spearman"]["dimension"] == accuracy and stats["accuracy_spearman"]["n"] == 12
    assert stats["accuracy_spearman"]["rho"] == pytest.approx(rho) and stats["accuracy_spearman"]["p"] == pytest.approx(p)

    researcher = role_client(RESEARCHER)
    assert researcher.get(f"/api/ratings/campaigns/{campaign.pk}/statistics/").json()["contradicted"] == stats
    page = researcher.get(f"/rating/{campaign.pk}/dashboard/").content.decode()
    assert 'id="evidence-check"' in page and "model-x" in page and "50% (3 of 6)" in page
    report = researcher.get(f"/rating/{campaign.pk}/report/", {"format": "md"}).content.decode()
    assert "| model-x | 50% (3 of 6) |" in report and "n = 12 items" in report


# --- the measure tool's N3 helper (static/js/signal_view.js) in a real browser --------------------

N3_HELPER = """() => {
  const sf = 100, ep = 3000, row = new Float32Array(3 * ep);
  for (let i = 0; i < row.length; i++) row[i] = 5 * Math.sin(2 * Math.PI * 12 * i / sf);
  for (let i = ep + 500; i < ep + 1400; i++) row[i] += 80 * Math.sin(2 * Math.PI * (i - ep - 500) / sf);  // 9 s, 160 µV
  for (let i = ep + 2000; i < ep + 2600; i++) row[i] += 20 * Math.sin(2 * Math.PI * (i - ep - 2000) / sf);  // 40 µV
  const view = Object.create(SignalView.prototype);
  view.data = { rows: [row], scale_uv: 1, sfreq: sf, current: 1, epoch_samples: ep, derivations: ["F4-M1"] };
  const out = { epoch: view.slowWaves(0, ep, 2 * ep - 1), part: view.slowWaves(0, ep + 400, ep + 1500),
                text: view.describe({ band: 0, from: ep, to: 2 * ep - 1 }) };
  view.data.derivations = ["C4-M1"];
  out.central = view.describe({ band: 0, from: ep, to: 2 * ep - 1 });
  return out;
}"""


@pytest.mark.browser
def test_measure_tool_gives_the_slow_wave_cover_on_the_frontal_trace(browser):  # noqa: F811
    page = browser.new_page()
    page.set_content("<canvas></canvas>")
    page.add_script_tag(path=str(Path(__file__).resolve().parent.parent / "static/js/signal_view.js"))
    out = page.evaluate(N3_HELPER)
    assert out["epoch"]["span"] == out["epoch"]["epoch"] == pytest.approx(0.3, abs=0.02)  # 9 s of 30, not the 40-µV waves
    assert out["part"]["span"] == pytest.approx(9 / 11, abs=0.04) and out["part"]["epoch"] == out["epoch"]["epoch"]
    assert out["text"].endswith("slow waves (0.5–2 Hz, ≥ 75 µV p-p): 30% of the span, 30% of the current epoch (N3: ≥ 20%)")
    assert "slow waves" not in out["central"]  # the helper reads the frontal trace only
