"""A built release loads with Hugging Face `datasets` through its dataset card's parquet configs.

HF `datasets` lives in its own virtual environment outside the project (our Django app is also named
`datasets`), created once under ~/.cache/sleepreview-hf-venv (SLEEPREVIEW_HF_VENV to move it) from the
base interpreter; the loader runs there in a subprocess, outside the project root, with a clean
environment and offline. Every row it reads must equal the release's CSV files and the database.
"""
import csv
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from annotation.models import Label
from bench.export import populate
from datasets.models import Epoch
from inference.models import Prediction
from ratings.models import Rating, RatingCampaign
from releases.models import Release
from releases.services.export import TABLES

CONFIGS = ("coarse", "fine", "stage_labels", "predictions", "ratings")
LOADER = """
import json, sys
from datasets import load_dataset

out = {}
for config in sys.argv[2:]:
    data = load_dataset(sys.argv[1], config, split="train")
    out[config] = {"columns": data.column_names, "rows": data.to_list()}
print(json.dumps(out))
"""


@pytest.fixture(scope="session")
def hf_python() -> Path:
    venv = Path(os.environ.get("SLEEPREVIEW_HF_VENV", Path.home() / ".cache" / "sleepreview-hf-venv"))
    python = venv / "bin" / "python"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:  # one creator at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / ".installed").exists():
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
            steps = [[sys._base_executable, "-m", "venv", "--clear", str(venv)],
                     [str(python), "-m", "pip", "install", "-q", "datasets"]]
            for step in steps:
                result = subprocess.run(step, cwd=venv.parent, env=env, capture_output=True, text=True, timeout=900)
                if result.returncode:
                    pytest.fail(f"cannot set up Hugging Face datasets in {venv}: {result.stderr[-500:]}")
            (venv / ".installed").touch()
    return python


def text(value) -> str:
    """A Parquet value as the CSV writer writes it."""
    return "" if value is None else str(value)


def csv_rows(paths) -> list[dict]:
    rows = []
    for path in sorted(paths):
        with open(path, encoding="utf-8", newline="") as handle:
            rows += list(csv.DictReader(handle))
    return rows


@pytest.mark.django_db
def test_release_loads_as_hugging_face_parquet_dataset(hf_python, tmp_path):
    names = populate(recordings=3, epochs=60, cohort="HF")
    out = tmp_path / "out"
    call_command("export_release", "hf", "1.0.0", "--cohort", "HF", "--scoring-campaign", names["scoring_campaigns"][0],
                 "--rating-campaign", names["rating_campaigns"][0], "--model-version", names["model_versions"][0],
                 "--output", str(out), verbosity=0)
    release = Release.objects.get(name="hf")
    folder = out / release.folder

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV")}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_DATASETS_CACHE=str(tmp_path / "hf" / "datasets"), HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1")
    result = subprocess.run([str(hf_python), "-c", LOADER, str(folder), *CONFIGS], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])

    expected = {
        "coarse": csv_rows((folder / "annotations" / "coarse").glob("*.csv")),
        "fine": csv_rows((folder / "annotations" / "fine").glob("*.csv")),
        **{name: csv_rows([folder / "tables" / f"{name}.csv"]) for name in ("stage_labels", "predictions", "ratings")},
    }
    for config in CONFIGS:
        assert loaded[config]["columns"] == [f for f, _ in TABLES[config]], config
        assert [{k: text(v) for k, v in row.items()} for row in loaded[config]["rows"]] == expected[config], config

    counts = {config: len(loaded[config]["rows"]) for config in CONFIGS}
    rubric = RatingCampaign.objects.get(name=names["rating_campaigns"][0]).rubric
    assert counts == {
        "coarse": release.epochs, "fine": Epoch.objects.exclude(reference_rationale="").count(),
        "stage_labels": Label.objects.count(), "predictions": Prediction.objects.count(),
        "ratings": Rating.objects.count() * len(rubric.keys)}
    assert counts["fine"] and counts["ratings"] and release.epochs < names["epochs"]  # unscored epochs are left out
    first = loaded["coarse"]["rows"][0]
    assert first["custom_id"] == f"01-03-0001#0_{first['Stage']}" and first["N"] == 0
    assert isinstance(loaded["stage_labels"]["rows"][0]["uncertain"], bool)
