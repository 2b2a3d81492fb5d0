"""{% epoch_predictions epoch %}: each model version's output for an epoch, for roles allowed to see them."""
from django import template

from core.access import policy_for
from inference.models import AasmRule, Prediction

register = template.Library()


@register.inclusion_tag("inference/_epoch_predictions.html", takes_context=True)
def epoch_predictions(context, epoch):
    policy = policy_for(context["request"].user)
    if not policy.can_see_model_outputs:
        return {"allowed": False}
    predictions = list(Prediction.objects.filter(epoch=epoch).select_related("model_version", "epoch__recording").order_by("model_version__name"))
    rules = {r.rule_id: r for r in AasmRule.objects.all()}
    return {
        "allowed": True,
        "rows": [(p, policy.model_label(p.model_version, i), [rules[r] for r in p.rule_ids if r in rules])
                 for i, p in enumerate(predictions)],
    }
