from django.apps import AppConfig


def rater_recording_scope(user):
    """Users who may see reference stages reach every recording; everyone else (raters) reaches only
    the recordings of the campaigns they are raters or adjudicators of (none when they are in no campaign)."""
    from django.db.models import Q

    from core.access import SEE_REFERENCE

    if user.has_perm(SEE_REFERENCE):
        return None
    from annotation.models import ScoringCampaign

    assigned = ScoringCampaign.objects.filter(Q(raters=user) | Q(adjudicators=user))
    return Q(pk__in=ScoringCampaign.recordings.through.objects
             .filter(scoringcampaign__in=assigned).values("recording_id"))


class AnnotationConfig(AppConfig):
    name = "annotation"

    def ready(self):
        from annotation.services.blinding import blind_scoring_assignments, epochs_to_score_blind
        from annotation.services.consensus import consensus_reference, scoring_rationales
        from annotation.services.hypnogram_export import SOURCES as HYPNOGRAM_EXPORT_SOURCES
        from annotation.services.work import scoring_work
        from core.access import register_recording_scope
        from core.services.blinding import SCORING, register_assignments, register_blind_epochs
        from core.services.work import register_work
        from datasets.services.hypnogram_export import HYPNOGRAM_SOURCES
        from datasets.services.rationales import EXPERT_RATIONALE_SOURCES
        from inference.services.evaluation import REFERENCE_PROVIDERS

        register_recording_scope(rater_recording_scope)
        register_blind_epochs(epochs_to_score_blind)
        register_assignments(SCORING, blind_scoring_assignments)
        register_work(scoring_work)
        # Inference evaluates against "consensus" through this registry: inference never imports annotation.
        REFERENCE_PROVIDERS["consensus"] = consensus_reference
        EXPERT_RATIONALE_SOURCES["scoring"] = scoring_rationales
        # Hypnogram exports of a campaign's consensus and of one rater's labels (datasets never imports annotation).
        HYPNOGRAM_SOURCES.update(HYPNOGRAM_EXPORT_SOURCES)
