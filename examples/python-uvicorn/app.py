"""An ASGI app that uvicorn serves on the socket clusterd opened (`uvicorn --fd N`).

Each answer names the process that served it: the uvicorn process clusterd started in slot
CLUSTERD_WORKER_ID.
"""
import os


async def app(scope, receive, send):
    if scope["type"] == "lifespan":  # nothing to set up or tear down
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body = "hello from pid {} (worker {} of {})\n".format(
        os.getpid(), os.environ.get("CLUSTERD_WORKER_ID"), os.environ.get("CLUSTERD_WORKERS"),
    ).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
