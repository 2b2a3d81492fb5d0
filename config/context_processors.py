from config.roles import user_roles


def roles(request):
    user_role_set = user_roles(request.user)
    return {"user_roles": sorted(user_role_set), "can_see_reference": request.user.has_perm("datasets.view_reference_stage")}
