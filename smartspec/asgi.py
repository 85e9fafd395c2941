"""ASGI entry point: `uvicorn smartspec.asgi:application`.

Static files are served by Django's own ASGI static handler, so a single
process serves the dashboard's assets without a separate web server.
"""

import os

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartspec.settings")

application = ASGIStaticFilesHandler(get_asgi_application())
