"""Write a synthetic PSG night as EDF+ (MASS channel names, Sleep-EDF stage annotations)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from datasets.services.synthetic import write_synthetic_edf


class Command(BaseCommand):
    help = "Write a synthetic, physiologically plausible PSG night (EDF+ with hypnogram annotations)."

    def add_arguments(self, parser):
        parser.add_argument("out", help="output .edf path")
        parser.add_argument("--hours", type=float, default=8.0, help="recording length (default 8)")
        parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")

    def handle(self, *args, out, hours, seed, **options):
        if not 0 < hours <= 24:
            raise CommandError(f"--hours must be in (0, 24], got {hours}")
        path = Path(out).expanduser().resolve()
        if path.suffix.lower() != ".edf":
            raise CommandError(f"output must be an .edf file, got {path.name}")
        path.parent.mkdir(parents=True, exist_ok=True)
        night = write_synthetic_edf(path, hours=hours, seed=seed)
        counts = ", ".join(f"{stage} {count}" for stage, count in night.stage_counts().items())
        self.stdout.write(str(path))
        self.stdout.write(f"{night.n_epochs} epochs (30 s, {hours:g} h, seed {seed})")
        self.stdout.write(f"stages: {counts}")
