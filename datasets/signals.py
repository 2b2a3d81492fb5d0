"""Storage follows the rows: a deleted recording takes its files along unless another row still uses them."""
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from datasets.models import EpochImage, Recording


def _delete_unreferenced(name: str, model, field: str) -> None:
    def delete():
        if not model.objects.filter(**{field: name}).exists():
            default_storage.delete(name)

    transaction.on_commit(delete)


@receiver(post_delete, sender=Recording, dispatch_uid="recording_files")
def delete_recording_files(sender, instance: Recording, **kwargs) -> None:
    _delete_unreferenced(instance.signal_file, Recording, "signal_file")


@receiver(post_delete, sender=EpochImage, dispatch_uid="epoch_image_files")
def delete_image_file(sender, instance: EpochImage, **kwargs) -> None:
    _delete_unreferenced(instance.storage_name, EpochImage, "storage_name")
