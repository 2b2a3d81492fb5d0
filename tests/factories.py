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


def assign_rater(recording: Recording, *users):
    """Put `recording` in a fresh scoring campaign whose raters are `users` (User objects or usernames), so
    these raters reach it (annotation's recording scope narrows raters to their campaigns' recordings)."""
    from django.contrib.auth import get_user_model

    from annotation.models import ScoringCampaign
    from annotation.services.campaigns import create_campaign

    User = get_user_model()
    raters = [u if isinstance(u, User) else User.objects.get(username=u) for u in users]
    return create_campaign(f"campaign-{ScoringCampaign.objects.count() + 1}-{recording.pk}", recordings=[recording],
                           overlap=1, raters=raters)
