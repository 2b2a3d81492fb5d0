"""Permissions of each role in the ratings app (merged by core.roles.sync_roles)."""
from core.roles import CURATOR, RATER, RESEARCHER

READ = ["ratings.view_ratingcampaign", "ratings.view_rating"]

ROLE_PERMISSIONS = {
    # Raters rate only their assignments and read only their own ratings (the access policy narrows them).
    RATER: ["ratings.view_ratingcampaign", "ratings.rate_rationales", "ratings.add_rating", "ratings.view_rating"],
    RESEARCHER: READ,
    CURATOR: READ + ["ratings.add_ratingcampaign", "ratings.change_ratingcampaign", "ratings.delete_ratingcampaign"],
}
