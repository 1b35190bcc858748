"""A tiny ASGI app for the real-server tests: `uvicorn --fd 3` serves it on clusterd's socket.

Every answer is JSON naming who answered: pid, parent pid and the clusterd slot.
"""
import json
import os


async def app(scope, receive, send):
    if scope["type"] != "http":  # lifespan: nothing to set up
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        return
    body = json.dumps({
        "server": "uvicorn",
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "slot": os.environ.get("CLUSTERD_WORKER_ID"),
    }).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
