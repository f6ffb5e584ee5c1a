"""Everything that talks to Postgres, Redis, HTTP and SMTP: one client or pool per backend,
errors mapped onto celeryref.errors.
"""
