from django.db import migrations

from inference.services.baseline import split_legacy_rationale


def strip_origin_from_items(apps, schema_editor):
    """Rating items copy their rationale: strip the version-1 baseline's origin sentences there too, so no rater is
    served them again (the text earlier raters saw stays in the prediction's raw_output)."""
    RatingItem = apps.get_model("ratings", "RatingItem")
    changed = []
    legacy = RatingItem.objects.filter(origin="model", rationale__contains="YASA classifier")
    for item in legacy.only("pk", "rationale"):
        item.rationale, note = split_legacy_rationale(item.rationale)
        if note:
            changed.append(item)
    RatingItem.objects.bulk_update(changed, ["rationale"], batch_size=1000)


class Migration(migrations.Migration):

    dependencies = [
        ("ratings", "0003_key_dwell_ms"),
        ("inference", "0006_prediction_origin_fields"),
    ]

    operations = [migrations.RunPython(strip_origin_from_items, migrations.RunPython.noop)]
