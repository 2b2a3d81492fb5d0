"""{% epoch_predictions epoch %}: each model version's output for an epoch, for roles allowed to see them."""
from django import template

from inference.models import AasmRule, Prediction

register = template.Library()


@register.inclusion_tag("inference/_epoch_predictions.html", takes_context=True)
def epoch_predictions(context, epoch):
    user = context["request"].user
    if not user.has_perm("inference.view_prediction"):
        return {"allowed": False}
    predictions = list(Prediction.objects.filter(epoch=epoch).select_related("model_version").order_by("model_version__name"))
    rules = {r.rule_id: r for r in AasmRule.objects.all()}
    return {
        "allowed": True,
        "rows": [(p, [rules[r] for r in p.rule_ids if r in rules]) for p in predictions],
    }
