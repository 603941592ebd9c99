"""The zoo's WSGI app (gunicorn, uwsgi, waitress, cheroot): a few lines.

GET /        -> "hello\n"
GET /sleep   -> "slept\n" after 2 s (a slow request: fills a worker)
"""
import time


def app(environ, start_response):
    body = b"hello\n"
    if environ.get("PATH_INFO") == "/sleep":
        time.sleep(2)
        body = b"slept\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


application = app  # uwsgi's default name
