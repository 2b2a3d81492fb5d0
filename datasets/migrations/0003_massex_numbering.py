"""MASS-EX N on epochs (rank among scored epochs), MASS-EX options on imports; existing rows backfilled."""
import core.models
from django.db import migrations, models


def backfill(apps, schema_editor):
    """N by rank; recordings whose hypnogram is a MASS-EX CSV were read as contiguous (N = onset / 30 s)."""
    Recording = apps.get_model("datasets", "Recording")
    Epoch = apps.get_model("datasets", "Epoch")
    for recording in Recording.objects.iterator():
        contiguous = recording.hypnogram_format == "mass-ex"
        epochs, rank = [], 0
        for epoch in Epoch.objects.filter(recording=recording).order_by("index").only("pk", "stage", "onset_s"):
            if epoch.stage == "unscored":
                continue
            epoch.massex_n = round(epoch.onset_s / 30) if contiguous else rank
            rank += 1
            epochs.append(epoch)
        Epoch.objects.bulk_update(epochs, ["massex_n"], batch_size=500)
        if contiguous:
            Recording.objects.filter(pk=recording.pk).update(massex_contiguous=True)


class Migration(migrations.Migration):

    dependencies = [
        ('datasets', '0002_core_job_engine'),
    ]

    operations = [
        migrations.AddField(
            model_name='epoch',
            name='massex_n',
            field=models.PositiveIntegerField(blank=True, help_text="MASS-EX N: rank among the recording's scored epochs; none when unscored", null=True),
        ),
        migrations.AddField(
            model_name='importjob',
            name='massex_contiguous',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='importjob',
            name='massex_name',
            field=models.CharField(blank=True, max_length=255),
        ),
        migrations.AddField(
            model_name='importjob',
            name='massex_path',
            field=core.models.StorageNameField(blank=True, help_text='MASS-EX CSV read onto the recording', max_length=500),
        ),
        migrations.AddField(
            model_name='recording',
            name='massex_contiguous',
            field=models.BooleanField(default=False, help_text='a MASS-EX CSV was read as the hypnogram, its epochs stated contiguous at import'),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
