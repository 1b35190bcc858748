"""A WSGI app that gunicorn serves on the socket clusterd opened.

Each answer names the process that served it (a gunicorn worker) and its parent, the gunicorn
arbiter that clusterd started in slot CLUSTERD_WORKER_ID.
"""
import os


def app(environ, start_response):
    body = "hello from pid {} (worker {} of {}, gunicorn arbiter {})\n".format(
        os.getpid(), os.environ.get("CLUSTERD_WORKER_ID"), os.environ.get("CLUSTERD_WORKERS"),
        os.getppid(),
    ).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
