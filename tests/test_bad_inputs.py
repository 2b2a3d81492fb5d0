"""The bad-input corpus (tests/data/bad/cases.json): one case per file or payload, on every surface that reads
input. A refused case must fail with an error naming the problem (the case's pattern: file, line, field), in
words, never a Python repr or a traceback, and write nothing: no row of any model, no file in storage. An accepted
case (a robustness case: a BOM, quotes and newlines, annotations out of order) must import what it says.

With RELIABILITY_REPORT_FILE set, each case appends its outcome as a JSON line (manage.py reliability_report)."""
from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tests.reliability import record, row_counts, stored_files

BAD = Path(__file__).resolve().parent / "data" / "bad"
CASES = json.loads((BAD / "cases.json").read_text(encoding="utf-8"))
PSG_SECONDS = 600  # the corpus recording: 20 epochs
REPR = re.compile(r"""\bb['"]|Traceback|<[\w.]+ object at 0x""")
pytestmark = pytest.mark.bad_input


@pytest.fixture(scope="module")
def corpus_psg(tmp_path_factory) -> Path:
    """A 10-minute synthetic night: the recording the hypnograms of the corpus are read onto."""
    from datasets.services.synthetic import write_synthetic_edf

    path = tmp_path_factory.mktemp("corpus") / "corpus-night.edf"
    write_synthetic_edf(path, hours=PSG_SECONDS / 3600, seed=3)
    return path


def _massex_world():
    """Cohort MASSBAD with recording 01-03-0001: 12 epochs, one unscored, so MASS-EX N 0-10."""
    from datasets.services.massex import ranks
    from tests.factories import make_recording

    stages = ["W", "N1", "N2", "N2", "N3", "N3", "R", "R", "N2", "unscored", "W", "N2"]
    recording = make_recording("MASSBAD", "01-03-0001", stages)
    epochs = list(recording.epochs.order_by("index"))
    for epoch, n in zip(epochs, ranks(epochs)):
        epoch.massex_n = n
    type(epochs[0]).objects.bulk_update(epochs, ["massex_n"])
    return recording


def _world():
    """core.testing.build_world plus a cohort "Other" with recording OT-0001, outside every campaign."""
    from core.testing import build_world
    from tests.factories import make_recording

    world = build_world()
    world.other = make_recording("Other", "OT-0001", ["W", "N2", "N2", "R"])
    return world


def _substitute(value, context: dict):
    """Payload tokens: $item, $rating_item, $uuid, $saved_uuid, $scores:N, $text:N, $dims_edited."""
    if isinstance(value, dict):
        return {k: _substitute(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, context) for v in value]
    if not isinstance(value, str) or not value.startswith("$"):
        return value
    name, _, argument = value[1:].partition(":")
    if name == "uuid":
        return str(uuid.uuid4())
    if name == "scores":
        score = int(argument) if argument.lstrip("-").isdigit() else argument
        return {key: score for key in context["rubric_keys"]}
    if name == "text":
        return "x" * int(argument)
    return context[name]


def _api_setup(world, setup: str | None, client) -> dict:
    """Rows the case needs before it runs (written before the counts are taken)."""
    from annotation.services import queue
    from annotation.services.campaigns import create_campaign
    from ratings.services.queue import RATING

    context = {"item": world.items[0].pk, "rating_item": world.rating_item.pk,
               "rubric_keys": world.rating_campaign.rubric.keys, "saved_uuid": str(uuid.uuid4())}
    dims = [dict(d) for d in world.rating_campaign.rubric.dimensions]
    dims[0]["title"] += " (edited)"
    context["dims_edited"] = dims
    context["urls"] = {"labels": f"/api/scoring/campaigns/{world.campaign.pk}/labels/",
                       "ratings": f"/api/ratings/campaigns/{world.rating_campaign.pk}/ratings/",
                       "rubric": f"/api/ratings/campaigns/{world.rating_campaign.pk}/rubric/",
                       "releases": "/api/releases/"}
    if setup == "label":
        queue.submit_label(world.campaign, world.rater, world.items[0], stage="W", client_id=context["saved_uuid"])
    elif setup == "rating":
        RATING.submit(world.rating_campaign, world.rater, world.rating_item, client_id=context["saved_uuid"],
                      scores={key: 3 for key in context["rubric_keys"]})
    elif setup == "rationale_campaign":
        campaign = create_campaign("Rationale campaign", recordings=[world.recording], overlap=1,
                                   raters=[world.rater], rationale_mode=True)
        item, _ = queue.next_item(campaign, world.rater)
        context["item"] = item.pk
        context["urls"]["rationale_labels"] = f"/api/scoring/campaigns/{campaign.pk}/labels/"
    return context


class Run:
    """One case: its setup, then the counts, the input, the counts again."""

    def __init__(self, case, media_root: Path, psg: Path | None):
        self.case, self.media_root, self.psg = case, media_root, psg
        self.message, self.status, self.check = "", None, lambda: None

    def __call__(self):
        surface = self.case["surface"]
        action = getattr(self, f"_{surface}")()
        self.rows_before, self.files_before = row_counts(), stored_files(self.media_root)
        from core.exceptions import InputError

        try:
            action()
            self.observed = "accepted"
        except _Refused:
            self.observed = "refused"
        except (CommandError, InputError) as exc:
            self.message, self.observed = str(exc), "refused"
        self.rows_after, self.files_after = row_counts(), stored_files(self.media_root)

    # each surface returns the action to observe, after its setup
    def _hypnogram(self):
        from datasets.services.ingest import ImportRequest, import_psg

        request = ImportRequest(path=self.psg, cohort="Corpus", hypnogram=BAD / self.case["input"],
                                hypnogram_format=self.case.get("format"))

        def action():
            recording, _ = import_psg(request)
            self.check = lambda: self._stages_are(recording)
        return action

    def _stages_are(self, recording):
        stages = list(recording.epochs.order_by("index").values_list("stage", flat=True))
        assert stages == self.case["stages"]

    def _massex(self):
        recording = _massex_world()

        def check():
            rationale = dict(recording.epochs.exclude(massex_n=None).values_list("massex_n", "reference_rationale"))
            for n, text in self.case["rationale"].items():
                assert rationale[int(n)] == text
        self.check = check
        return lambda: call_command("import_massex", str(BAD / self.case["input"]), cohort="MASSBAD", verbosity=0)

    def _scoring_spec(self):
        _world()
        return lambda: call_command("create_campaign", str(BAD / self.case["input"]), verbosity=0)

    def _rating_spec(self):
        _world()
        return lambda: call_command("create_rating_campaign", str(BAD / self.case["input"]), verbosity=0)

    def _model_output(self):
        from inference.services.parsing import parse_output

        def action():
            parsed = parse_output((BAD / self.case["input"]).read_text(encoding="utf-8"))
            self.message, self.status = parsed.detail, parsed.status
            if parsed.status != "failed" and not parsed.detail:
                return
            raise _Refused()
        return action

    def _api(self):
        from django.test import Client

        from core.roles import CURATOR
        from core.testing import make_role_user

        world = _world()
        client = Client()
        client.force_login(world.rater if self.case["role"] == "rater" else make_role_user(CURATOR, "corpus-curator"))
        context = _api_setup(world, self.case.get("setup"), client)
        payload = json.dumps(_substitute(self.case["payload"], context))
        url = context["urls"][self.case["url"]]

        def action():
            response = getattr(client, self.case["method"])(url, payload, content_type="application/json")
            self.status = response.status_code
            self.message = response.content.decode("utf-8", "replace")[:2000]
            if response.status_code >= 400:
                raise _Refused()
        return action


class _Refused(CommandError):
    """A refusal that is not an exception of the code under test: an API answer of 4xx, a model output's detail."""


def _record(run: Run, clean: bool) -> None:
    case = run.case
    expected = "accepted" if case["outcome"] == "accepted" else f"refused: {case['expect']}"
    if case["surface"] == "api":
        expected = f"{case['status']}: {case['expect']}"
    observed = run.observed if not run.message else f"{run.observed}: {run.message}"
    if run.status is not None:
        observed = f"{run.status}: {run.message}"
    record(case["id"], surface=case["surface"], refused=case["outcome"] != "accepted", expected=expected,
           observed=observed, rows_before=run.rows_before, rows_after=run.rows_after, files_before=run.files_before,
           files_after=run.files_after, clean=clean)


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_bad_input(case, db, media_root, request):
    psg = request.getfixturevalue("corpus_psg") if case["surface"] == "hypnogram" else None
    run = Run(case, media_root, psg)
    run()
    problems = []
    if case["outcome"] == "accepted":
        if run.observed != "accepted":
            problems.append(f"refused: {run.message}")
        else:
            try:
                run.check()
            except AssertionError as exc:
                problems.append(f"imported wrongly: {exc}")
    else:
        if run.observed != "refused":
            problems.append("accepted")
        if not re.search(case["expect"], run.message):
            problems.append(f"message does not match {case['expect']!r}")
        if REPR.search(run.message):
            problems.append("message holds a Python representation or a traceback")
        if "status" in case and run.status != case["status"]:
            problems.append(f"status {run.status}, expected {case['status']}")
        if run.rows_after != run.rows_before:
            changed = {k: (run.rows_before.get(k), v) for k, v in run.rows_after.items() if run.rows_before.get(k) != v}
            problems.append(f"rows written: {changed}")
        if run.files_after != run.files_before:
            problems.append(f"files written: {sorted(set(run.files_after) ^ set(run.files_before))}")
    _record(run, not problems)
    assert not problems, f"{case['id']}: {'; '.join(problems)}\nmessage: {run.message[:1000]}"


def test_corpus_is_large_and_covers_every_surface():
    """At least 40 cases, each surface present, every input file present, ids unique."""
    assert len(CASES) >= 40
    assert {case["surface"] for case in CASES} == {"hypnogram", "massex", "scoring_spec", "rating_spec", "api",
                                                    "model_output"}
    assert len({case["id"] for case in CASES}) == len(CASES)
    for case in CASES:
        if "input" in case:
            assert (BAD / case["input"]).exists(), case["input"]
