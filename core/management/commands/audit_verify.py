"""python manage.py audit_verify: every answer and adjudication row explained by the audit trail."""
from django.core.management.base import BaseCommand, CommandError

from core.services import audit


class Command(BaseCommand):
    help = ("Check that every label, rating and adjudication row has its create record and that its latest "
            "record's after-state equals the row; name each mismatch, exit non-zero on any.")

    def handle(self, *args, **opts):
        models = audit.verified_models()
        problems = 0
        for problem in audit.verify(models):
            problems += 1
            self.stdout.write(problem)
        rows = sum(m.objects.count() for m in models)
        if problems:
            raise CommandError(f"{problems} of {rows} rows do not match the audit trail")
        self.stdout.write(self.style.SUCCESS(f"audit trail consistent: {rows} rows of "
                                             f"{', '.join(audit.object_type_of(m) for m in models)}"))
