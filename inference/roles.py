"""Permissions of each role in the inference app (merged by core.roles.sync_roles)."""
from core.roles import CURATOR, RESEARCHER

READ_MODELS = [
    "inference.view_aasmrule",
    "inference.view_modelversion",
    "inference.view_inferencejob",
    "inference.view_prediction",
]

ROLE_PERMISSIONS = {
    RESEARCHER: READ_MODELS,
    CURATOR: READ_MODELS + [
        "inference.change_aasmrule",
        "inference.add_modelversion",
        "inference.change_modelversion",
        "inference.add_inferencejob",
        "inference.change_inferencejob",
    ],
}
