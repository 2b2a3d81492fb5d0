"""Migration 0003 backfills MASS-EX N on existing epochs (rank; onset / 30 s for MASS-EX hypnograms)."""
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("datasets", "0002_core_job_engine")]
AFTER = [("datasets", "0003_massex_numbering")]


@pytest.mark.django_db(transaction=True)
def test_backfill_ranks_scored_epochs_and_marks_mass_ex_hypnograms_contiguous():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    apps = executor.loader.project_state(BEFORE).apps
    Cohort, Recording, Epoch = (apps.get_model("datasets", name) for name in ("Cohort", "Recording", "Epoch"))
    cohort = Cohort.objects.create(name="old")
    stages = {"edf-annotations": ["unscored", "W", "unscored", "N2"], "mass-ex": ["W", "unscored", "R"]}
    for i, (fmt, recording_stages) in enumerate(stages.items()):
        recording = Recording.objects.create(cohort=cohort, name=fmt, sha256=str(i) * 64, source_filename=f"{fmt}.edf",
                                             file_format="EDF+", duration_s=120, mains_hz=50, hypnogram_format=fmt)
        Epoch.objects.bulk_create([Epoch(recording=recording, index=j, onset_s=30.0 * (j + 1), stage=stage)
                                   for j, stage in enumerate(recording_stages)])
    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    apps = executor.loader.project_state(AFTER).apps
    Recording, Epoch = apps.get_model("datasets", "Recording"), apps.get_model("datasets", "Epoch")
    numbers = {r.name: list(Epoch.objects.filter(recording=r).order_by("index").values_list("massex_n", flat=True))
               for r in Recording.objects.all()}
    assert numbers == {"edf-annotations": [None, 0, None, 1], "mass-ex": [1, None, 3]}
    assert dict(Recording.objects.values_list("name", "massex_contiguous")) == {"edf-annotations": False, "mass-ex": True}
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
