"""What a release would change before it is built: the build's own writing (export.ReleaseContent) into a
temporary folder, compared by the build's own changelog (export.Changelog); nothing is saved or stored."""
from __future__ import annotations

import tempfile
from pathlib import Path

from releases.models import Release
from releases.services import export
from releases.services.build import check_choices

EXAMPLES = 5


def preview_release(name, version, *, cohorts, stage_source=Release.REFERENCE, scoring_campaigns=(),
                    rating_campaigns=(), model_versions=()) -> dict:
    """The previous built version (or None), the epochs and subjects the release would export and, against the
    previous version, each kind of change (epochs, labels, ratings) with its count and a few examples.
    InputError names what is wrong with the choices, as create_release would."""
    choices = check_choices(name, version, cohorts=cohorts, stage_source=stage_source,
                            scoring_campaigns=scoring_campaigns, rating_campaigns=rating_campaigns,
                            model_versions=model_versions)
    release = Release(name=name, version=version, stage_source=stage_source, previous=choices.previous)
    content = export.ReleaseContent(release, choices)
    changes = export.Changelog(release)
    epochs = subjects = 0
    with tempfile.TemporaryDirectory(prefix="release-preview-") as folder:
        root = Path(folder)
        tables = export.Tables(root)
        try:
            for recording in content.recordings:
                subject, exported = content.write_recording(recording, root, tables)
                changes.compare(subject, exported)
                epochs += len(exported)
                subjects += bool(exported)
        finally:
            tables.close()
        counts = changes.finish(root)
    return {"previous": choices.previous, "epochs": epochs, "subjects": subjects,
            "changes": [{"kind": kind, "title": title, "count": counts[kind],
                         "examples": changes.examples[kind][:EXAMPLES]}
                        for kind, title in zip(changes.KINDS, changes.TITLES)]}
