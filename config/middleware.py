"""Login required for every page; the API authenticates itself (session or token) in DRF."""
from django.conf import settings
from django.contrib.auth.views import redirect_to_login

PUBLIC_PREFIXES = ("/healthz", "/accounts/login/", "/api/", "/" + settings.STATIC_URL.lstrip("/"))


class LoginRequiredEverywhere:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.user.is_authenticated and not request.path.startswith(PUBLIC_PREFIXES):
            return redirect_to_login(request.get_full_path())
        return self.get_response(request)
