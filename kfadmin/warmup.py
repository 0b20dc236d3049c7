"""Do before the first request what Django otherwise does during it.

Django imports the URLconf (and with it every view, form and template tag module),
compiles templates and reads the translation catalogues lazily, on the first request
that needs them: 210-300 ms for the first request of every gunicorn worker. With
`preload_app` (gunicorn.conf.py) this runs once in gunicorn's master process, and
every worker it forks, at start or after a restart, starts warm.

Nothing here opens a connection (database, Redis): a socket opened before the fork
would be shared by every worker.
"""

from __future__ import annotations

import time
from pathlib import Path


def warm() -> float:
    """Import the views, compile every template, load the catalogues; seconds taken."""
    from django.conf import settings
    from django.template import TemplateDoesNotExist, TemplateSyntaxError, engines
    from django.urls import get_resolver
    from django.utils import translation

    began = time.perf_counter()
    resolver = get_resolver()
    resolver.url_patterns  # noqa: B018  (imports every urls and views module)
    resolver.reverse_dict  # noqa: B018  (builds what reverse() and {% url %} look up)
    for engine in engines.all():
        for folder in engine.template_dirs:
            root = Path(folder)
            for path in sorted(root.rglob("*.html")):
                try:
                    engine.get_template(str(path.relative_to(root)))
                except (TemplateDoesNotExist, TemplateSyntaxError):
                    continue  # a third-party template that needs what this project lacks
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            translation.gettext("History")
    return time.perf_counter() - began
