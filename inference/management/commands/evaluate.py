"""python manage.py evaluate --model NAME [--model NAME ...] --cohort NAME [--reference hypnogram|consensus]"""
import json

from django.core.management.base import BaseCommand, CommandError

from datasets.models import Cohort
from inference.models import ModelVersion
from inference.services.evaluation import REFERENCES, TABLE_COLUMNS, EvaluationError, compare, table_rows, to_csv


class Command(BaseCommand):
    help = "Evaluate model versions against expert labels on a cohort (several versions: on their common epochs)."

    def add_arguments(self, parser):
        parser.add_argument("--model", action="append", required=True, help="model version name (repeatable)")
        parser.add_argument("--cohort", required=True)
        parser.add_argument("--reference", choices=REFERENCES, default="hypnogram")
        parser.add_argument("--format", choices=("table", "json", "csv"), default="table")
        parser.add_argument("--output", help="write to this file instead of standard output")

    def handle(self, *args, **opts):
        try:
            cohort = Cohort.objects.get(name=opts["cohort"])
        except Cohort.DoesNotExist:
            raise CommandError(f"no cohort named {opts['cohort']!r}") from None
        versions = []
        for name in opts["model"]:
            version = ModelVersion.objects.filter(name=name).first()
            if version is None:
                raise CommandError(f"no model version named {name!r}")
            versions.append(version)
        try:
            result = compare(versions, cohort, reference=opts["reference"])
        except EvaluationError as exc:
            raise CommandError(str(exc)) from None
        if opts["format"] == "json":
            text = json.dumps(result, indent=2, default=str)
        elif opts["format"] == "csv":
            text = to_csv(result["models"])
        else:
            text = _table(result)
        if opts["output"]:
            with open(opts["output"], "w", encoding="utf-8") as fh:
                fh.write(text)
        else:
            self.stdout.write(text)


def _table(result: dict) -> str:
    rows = table_rows(result["models"])
    header = f"{result['cohort']} · reference {result['reference']} · {result['common_epochs']} common epochs"
    widths = [max(10, len(c)) for c in TABLE_COLUMNS]
    lines = [header, "  ".join(f"{c:>{w}}" for c, w in zip(TABLE_COLUMNS, widths))]
    for row in rows:
        lines.append("  ".join(f"{_cell(row[c]):>{w}}" for c, w in zip(TABLE_COLUMNS, widths)))
    lines.append("rule_iou_all_epochs: the authors' rule-set IoU (paper table), every epoch with a parsed stage, "
                 "a missing set empty, both empty 1; rule_iou_annotated_epochs: only epochs whose reference lists rules")
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if isinstance(value, float) else str(value)
