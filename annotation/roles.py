"""Permissions of each role in the annotation app (merged by core.roles.sync_roles)."""
from core.roles import CURATOR, RATER, RESEARCHER

READ = ["annotation.view_scoringcampaign", "annotation.view_label", "annotation.view_adjudication"]

ROLE_PERMISSIONS = {
    # Raters read and write only their own assignments and labels (the access policy narrows them).
    RATER: ["annotation.view_scoringcampaign", "annotation.score_epochs", "annotation.add_label",
            "annotation.view_label"],
    RESEARCHER: READ,
    CURATOR: READ + ["annotation.add_scoringcampaign", "annotation.change_scoringcampaign",
                     "annotation.delete_scoringcampaign", "annotation.adjudicate", "annotation.add_adjudication"],
}
