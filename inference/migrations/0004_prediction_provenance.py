from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def from_recordings(apps, schema_editor):
    """Earlier outputs were made from the signals their recording holds now: its profile is theirs."""
    Prediction, Epoch = apps.get_model("inference", "Prediction"), apps.get_model("datasets", "Epoch")
    profile = Epoch.objects.filter(pk=OuterRef("epoch_id")).values("recording__preparation_profile")[:1]
    Prediction.objects.update(preparation_profile=Subquery(profile))


class Migration(migrations.Migration):

    dependencies = [
        ("inference", "0003_core_job_engine"),
        ("datasets", "0004_preparation_profile"),
    ]

    operations = [
        migrations.AddField(
            model_name="prediction",
            name="preparation_profile",
            field=models.CharField(
                blank=True, max_length=32,
                help_text="the recording's preparation profile (signals and images) the output was made from",
            ),
        ),
        migrations.RunPython(from_recordings, migrations.RunPython.noop),
        migrations.AddField(
            model_name="prediction",
            name="unknown_rule_ids",
            field=models.JSONField(
                blank=True, default=list,
                help_text="ids the output cited that the rule catalog does not know (count in rule IoU)",
            ),
        ),
    ]
