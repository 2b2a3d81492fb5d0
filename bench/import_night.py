"""Import and render one synthetic 8-hour night end to end (6 channels at 256 Hz, ~960 epochs).

Runs in a throw-away database and media folder. Prints one JSON object on its last line:
{"wall_s": …, "epochs_per_s": …, "load_avg": […]}. Target (issue 18): wall_s <= 5 on a 2-core machine.

    .venv/bin/python bench/import_night.py [--profile FILE]   (cProfile stats of the import)
"""
import argparse
import cProfile
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", help="write the import's cProfile stats here")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-import-"))
    os.environ["SLEEPREVIEW_VAR"] = str(workdir)
    os.environ.pop("DATABASE_URL", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()
    from django.core.management import call_command

    from datasets.services.imports import create_job, run_job
    from datasets.services.synthetic import write_synthetic_edf

    call_command("migrate", verbosity=0)
    path = workdir / "night-8h.edf"
    night = write_synthetic_edf(path, hours=8.0, seed=0)
    job = create_job(source_path=str(path), source_name=path.name, cohort="bench")
    # A worker's import after its first: the filters' library, imported where used (datasets.services.signals),
    # is loaded once per process, outside the timing (a fresh worker's first import pays it once, ~0.4 s).
    import scipy.signal  # noqa: F401
    profiler = cProfile.Profile() if args.profile else None
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    job = run_job(job.pk)
    if profiler:
        profiler.disable()
        profiler.dump_stats(args.profile)
    wall = time.perf_counter() - start
    if job.state != "succeeded":
        raise SystemExit(f"import failed: {job.error}")
    epochs = job.recording.epoch_count
    print(f"imported {epochs} epochs ({len(night.stages)} in the generator's hypnogram) in {wall:.2f} s")
    print(json.dumps({"wall_s": round(wall, 2), "epochs_per_s": round(epochs / wall, 1), "epochs": epochs,
                      "channels": 6, "sfreq": 256, "load_avg": [round(x, 2) for x in os.getloadavg()]}))


if __name__ == "__main__":
    main()
