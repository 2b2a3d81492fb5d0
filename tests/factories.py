"""Database rows for tests that need recordings and epochs without going through an import."""
from datasets.models import Cohort, Epoch, Recording


def make_recording(cohort_name: str, name: str, stages: list[str], rules: list[list[str]] | None = None) -> Recording:
    cohort, _ = Cohort.objects.get_or_create(name=cohort_name)
    recording = Recording.objects.create(
        cohort=cohort, name=name, sha256=f"{cohort_name}-{name}".ljust(64, "0")[:64], source_filename=f"{name}.edf",
        file_format="EDF+", duration_s=30.0 * len(stages), mains_hz=50, signal_file="none.npy", epoch_count=len(stages),
        derivations=["C4-M1"],
    )
    Epoch.objects.bulk_create([
        Epoch(recording=recording, index=i, onset_s=30.0 * i, stage=s, reference_rules=(rules[i] if rules else []))
        for i, s in enumerate(stages)
    ])
    return recording
