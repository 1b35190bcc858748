"""A tiny WSGI app for the real-server tests: gunicorn serves it on the socket clusterd opened.

Every answer is JSON naming who answered: the process (a gunicorn worker, whose parent is the
gunicorn arbiter that clusterd started), its parent, and the clusterd slot it inherited.
"""
import json
import os


def app(environ, start_response):
    body = json.dumps({
        "server": "gunicorn",
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "slot": os.environ.get("CLUSTERD_WORKER_ID"),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
