import os
from importlib import import_module

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()
# Import the URLconf, and with it every view, API and serializer, now rather than in each worker's first requests
# (seconds of imports a rater would wait through; with gunicorn --preload the workers share them).
import_module(settings.ROOT_URLCONF)
# And the numerical libraries that views import where used (the signal view's filters, the evaluation and rating
# figures): kept out of module imports so that processes not using them, a release build, do not carry them
# (~150 MB).
for module in ("scipy.signal", "scipy.stats", "sklearn.metrics"):
    import_module(module)
