"""Flower's login from the settings, not from Flower's environment (issue 17).

``celery -A celeryref.celery_app flower --conf=celeryref/observability/flower_config.py``
(the production profile, compose.prod.yml). Flower takes its basic-auth credentials
from ``FLOWER_BASIC_AUTH`` only, which puts the password in the container's
environment; Tornado executes this file instead and every top-level name that is a
Flower option becomes one. :data:`basic_auth` comes from
:attr:`~celeryref.settings.Settings.flower_basic_auth`, so from the file that
``FLOWER_BASIC_AUTH_FILE`` names (a Compose secret), checked like every secret. Without
credentials Flower would be open to anyone who reaches it: it refuses to start instead.
"""

from __future__ import annotations

from celeryref.settings import settings as _settings


def credentials() -> list[str]:
    """Flower's ``basic_auth`` option: ``["user:password"]``."""
    value = _settings.flower_basic_auth.get_secret_value()
    user, _, password = value.partition(":")
    if not (user and password):
        raise SystemExit("FLOWER_BASIC_AUTH(_FILE) must be user:password, or Flower is open")
    return [value]


#: Read by Flower (Tornado's ``parse_config_file``) as its ``--basic-auth`` option.
basic_auth = credentials()
