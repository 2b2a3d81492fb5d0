"""Load the 15 AASM rule ids of spec/rules.md into the catalog (texts editable later, ids fixed)."""
from django.db import migrations

from datasets.constants import AASM_RULES


def load(apps, schema_editor):
    AasmRule = apps.get_model("inference", "AasmRule")
    for position, (rule_id, stage, title, text) in enumerate(AASM_RULES):
        AasmRule.objects.update_or_create(
            rule_id=rule_id, defaults={"stage": stage, "title": title, "text": text, "position": position}
        )


def unload(apps, schema_editor):
    apps.get_model("inference", "AasmRule").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("inference", "0001_initial")]
    operations = [migrations.RunPython(load, unload)]
