"""python manage.py agreement_report --campaign NAME [--format md|json|csv]: a rating campaign's figures."""
from django.core.management.base import BaseCommand, CommandError

from ratings.models import RatingCampaign
from ratings.services.statistics import campaign_statistics, render_report


class Command(BaseCommand):
    help = "Print every figure of a rating campaign: the paper's table, agreement with intervals, breakdowns."

    def add_arguments(self, parser):
        parser.add_argument("--campaign", required=True, help="rating campaign name")
        parser.add_argument("--format", choices=("md", "json", "csv"), default="md")

    def handle(self, *args, campaign, format, **options):
        found = RatingCampaign.objects.filter(name=campaign).first()
        if found is None:
            names = ", ".join(RatingCampaign.objects.order_by("name").values_list("name", flat=True)) or "none"
            raise CommandError(f"no rating campaign {campaign!r} (campaigns: {names})")
        self.stdout.write(render_report(campaign_statistics(found), format), ending="")
