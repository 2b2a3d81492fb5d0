"""Sign-in endpoints under a throttle (LOGIN_THROTTLE_RATE): the login page and the API token."""
import hashlib
import math

from django.conf import settings
from django.contrib.auth.views import LoginView
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.throttling import SimpleRateThrottle


class LoginRateThrottle(SimpleRateThrottle):
    """Every request per client address, signed in or not."""

    scope = "login"

    def get_rate(self):
        return settings.LOGIN_THROTTLE_RATE

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class ThrottledObtainAuthToken(ObtainAuthToken):
    throttle_classes = [LoginRateThrottle]


class FailedSignIns(LoginRateThrottle):
    """Failed sign-ins on the login page, counted per client address and per username."""

    def __init__(self, request):
        super().__init__()
        self.now = self.timer()
        self.keys = [self.cache_format % {"scope": "login-failed-ip", "ident": self.get_ident(request)}]
        username = request.POST.get("username", "").strip().lower()
        if username:  # hashed: a cache key must not carry spaces or odd characters
            digest = hashlib.sha256(username.encode()).hexdigest()
            self.keys.append(self.cache_format % {"scope": "login-failed-user", "ident": digest})

    def _recent(self, key: str) -> list[float]:
        return [t for t in self.cache.get(key, []) if t > self.now - self.duration]  # newest first

    def wait(self) -> int | None:
        """Seconds until a sign-in may be tried again; None while under the limit."""
        waits = [history[self.num_requests - 1] + self.duration - self.now
                 for history in map(self._recent, self.keys) if len(history) >= self.num_requests]
        return max(1, math.ceil(max(waits))) if waits else None

    def record(self) -> None:
        for key in self.keys:
            self.cache.set(key, [self.now, *self._recent(key)], self.duration)


class ThrottledLoginView(LoginView):
    """Django's login page; past the limit of failed attempts it answers 429 without checking the password."""

    def get_redirect_url(self):
        """A `next` back to the site's root is no destination of its own: the sign-in lands where the user's
        work is (LOGIN_REDIRECT_URL)."""
        url = super().get_redirect_url()
        return "" if url == "/" else url

    def post(self, request, *args, **kwargs):
        self.failures = FailedSignIns(request)
        wait = self.failures.wait()
        if wait is None:
            return super().post(request, *args, **kwargs)
        context = self.get_context_data(form=self.form_class(request),
                                        throttled=f"Too many sign-in attempts; try again in {wait} seconds.")
        return self.render_to_response(context, status=429, headers={"Retry-After": str(wait)})

    def form_invalid(self, form):
        self.failures.record()
        return super().form_invalid(form)
