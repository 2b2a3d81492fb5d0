"""Permissions of each role in the datasets app (merged by core.roles.sync_roles)."""
from core.roles import CURATOR, RATER, RESEARCHER

READ_DATA = ["datasets.view_cohort", "datasets.view_recording", "datasets.view_epoch", "datasets.view_epochimage"]
READ_REFERENCE = ["datasets.view_reference_stage", "datasets.view_recording_provenance", "datasets.view_importjob"]

ROLE_PERMISSIONS = {
    # Raters see signals and images only: reference stages and provenance stay hidden (blinding).
    RATER: READ_DATA,
    RESEARCHER: READ_DATA + READ_REFERENCE,
    CURATOR: READ_DATA + READ_REFERENCE + [
        "datasets.add_importjob",
        "datasets.change_importjob",
        "datasets.add_cohort",
        "datasets.change_cohort",
        "datasets.delete_cohort",
        "datasets.change_recording",
        "datasets.delete_recording",
    ],
}
