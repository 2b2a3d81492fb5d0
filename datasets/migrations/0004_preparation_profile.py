from django.db import migrations, models

HELP = "signal preparation profile the signals and images were made with (datasets/services/signals.py)"


class Migration(migrations.Migration):
    """Recordings imported before profiles existed were prepared by platform-v0; new ones by sleepvlm-v1."""

    dependencies = [
        ("datasets", "0003_massex_numbering"),
    ]

    operations = [
        migrations.AddField(
            model_name="recording",
            name="preparation_profile",
            field=models.CharField(default="platform-v0", help_text=HELP, max_length=32),
        ),
        migrations.AlterField(
            model_name="recording",
            name="preparation_profile",
            field=models.CharField(default="sleepvlm-v1", help_text=HELP, max_length=32),
        ),
    ]
