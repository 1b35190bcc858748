"""A release whose application cannot load: gunicorn's worker fails to import it and exits, after
gunicorn's arbiter has already sent READY=1."""
raise RuntimeError("this release cannot load its application")
