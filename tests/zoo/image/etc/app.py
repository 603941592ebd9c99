"""The zoo's WSGI app (gunicorn, uwsgi, waitress, cheroot): a few lines.

GET /            -> "hello\n"
GET /sleep?s=N   -> "slept\n" after N seconds (default 2, at most 60): a slow
                    request that keeps a worker busy
"""
import time
from urllib.parse import parse_qs


def app(environ, start_response):
    body = b"hello\n"
    if environ.get("PATH_INFO") == "/sleep":
        seconds = parse_qs(environ.get("QUERY_STRING", "")).get("s", ["2"])[0]
        time.sleep(min(60.0, float(seconds)))
        body = b"slept\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


application = app  # uwsgi's default name
