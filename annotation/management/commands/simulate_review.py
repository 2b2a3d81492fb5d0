"""python manage.py simulate_review --model NAME [--cohort NAME | --recording ID ...] — the review curve
without humans (annotation.services.review.simulate_review), as JSON."""
import json

from django.core.management.base import BaseCommand, CommandError

from annotation.services.review import simulate_review
from datasets.models import Epoch
from inference.models import ModelVersion


class Command(BaseCommand):
    help = ("Simulate a model-assisted review: the model's predictions as the automatic hypnogram, the reference as "
            "the expert; prints κ and accuracy against the share reviewed (least confident first and random order) "
            "and the share that reaches κ ≥ 0.90.")

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, help="model version name")
        parser.add_argument("--cohort", help="cohort name (default: every recording)")
        parser.add_argument("--recording", type=int, action="append", default=[], help="recording id (repeatable)")

    def handle(self, *args, model, cohort, recording, **options):
        version = ModelVersion.objects.filter(name=model).first()
        if version is None:
            raise CommandError(f"unknown model version {model!r}")
        epochs = Epoch.objects.order_by("recording_id", "index")
        if cohort:
            epochs = epochs.filter(recording__cohort__name=cohort)
        if recording:
            epochs = epochs.filter(recording_id__in=recording)
        result = simulate_review(version, epochs)
        if not result["epochs"]:
            raise CommandError(f"no epoch with a reference stage and a parsed prediction of {model!r}")
        self.stdout.write(json.dumps({"model_version": version.name, "confidence_source": version.confidence_source,
                                      **result}))
