"""A Flask app for gunicorn's recipe in docs/servers.md: answers "hello" on /."""
from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello():
    return "hello\n"
