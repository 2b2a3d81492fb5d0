"""python manage.py check_evidence [--model NAME ...] [--recheck]: the rationale evidence check for stored predictions."""
from django.core.management.base import BaseCommand, CommandError

from inference.models import ModelVersion, Prediction
from inference.services.evidence import check_stored


class Command(BaseCommand):
    help = ("Check every cited rule of stored predictions against their epochs' measured signals "
            "(those not checked yet; --recheck: all).")

    def add_arguments(self, parser):
        parser.add_argument("--model", action="append", default=[], help="model version name (repeatable; default all)")
        parser.add_argument("--recheck", action="store_true", help="check again predictions already checked")

    def handle(self, *args, **opts):
        predictions = Prediction.objects.all()
        if opts["model"]:
            unknown = sorted(set(opts["model"]) - set(ModelVersion.objects.filter(name__in=opts["model"])
                                                       .values_list("name", flat=True)))
            if unknown:
                raise CommandError(f"no model version named {', '.join(map(repr, unknown))}")
            predictions = predictions.filter(model_version__name__in=opts["model"])
        if not opts["recheck"]:
            predictions = predictions.filter(evidence={})
        self.stdout.write(f"checked {check_stored(predictions)} predictions")
