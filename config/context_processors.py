from core.access import policy_for
from core.roles import user_roles


def roles(request):
    """The user's roles and access policy, for every template."""
    return {"user_roles": sorted(user_roles(request.user)), "policy": policy_for(request.user)}
