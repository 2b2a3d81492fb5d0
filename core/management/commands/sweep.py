"""python manage.py sweep [--grace-s N] [--dry-run]: queue stale jobs again, remove unreferenced files."""
from django.core.management.base import BaseCommand

from core.services import sweeps


class Command(BaseCommand):
    help = "Queue stale PENDING/RUNNING jobs again and delete stored files no row references (past the grace period)."

    def add_arguments(self, parser):
        parser.add_argument("--grace-s", type=float, help="spare files younger than this (default: setting)")
        parser.add_argument("--pending-after-s", type=float, help="re-queue PENDING jobs older than this")
        parser.add_argument("--dry-run", action="store_true", help="list the files, delete nothing, queue nothing")

    def handle(self, *args, **opts):
        if not opts["dry_run"]:
            for label, pk in sweeps.requeue_stale_jobs(pending_after_s=opts["pending_after_s"]):
                self.stdout.write(f"queued again: {label} #{pk}")
        removed = sweeps.sweep_storage(grace_s=opts["grace_s"], dry_run=opts["dry_run"])
        for name in removed:
            self.stdout.write(f"{'would remove' if opts['dry_run'] else 'removed'}: {name}")
        self.stdout.write(self.style.SUCCESS(f"{len(removed)} unreferenced file(s)"))
