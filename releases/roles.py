"""Permissions of each role in the releases app (merged by core.roles.sync_roles).

Releases hold reference stages, model outputs and every rater's labels: not for raters."""
from core.roles import CURATOR, RESEARCHER

READ = ["releases.view_release", "releases.download_release"]

ROLE_PERMISSIONS = {
    RESEARCHER: READ,
    CURATOR: READ + ["releases.add_release", "releases.change_release"],
}
