from django.apps import AppConfig


def rater_recording_scope(user):
    """Users who may see reference stages reach every recording; everyone else (raters) reaches only
    the recordings of the campaigns they are raters of (none when they are in no campaign)."""
    from django.db.models import Q

    from core.access import SEE_REFERENCE

    if user.has_perm(SEE_REFERENCE):
        return None
    from annotation.models import ScoringCampaign

    return Q(pk__in=ScoringCampaign.recordings.through.objects
             .filter(scoringcampaign__raters=user).values("recording_id"))


class AnnotationConfig(AppConfig):
    name = "annotation"

    def ready(self):
        from annotation.services.consensus import consensus_reference, scoring_rationales
        from core.access import register_recording_scope
        from datasets.services.rationales import EXPERT_RATIONALE_SOURCES
        from inference.services.evaluation import REFERENCE_PROVIDERS

        register_recording_scope(rater_recording_scope)
        # Inference evaluates against "consensus" through this registry: inference never imports annotation.
        REFERENCE_PROVIDERS["consensus"] = consensus_reference
        EXPERT_RATIONALE_SOURCES["scoring"] = scoring_rationales
