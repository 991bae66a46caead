"""moto's DynamoDB server with every request applied one at a time.

moto's TransactWriteItems checks conditions and writes without a lock, so two concurrent
transactions could both pass `attribute_not_exists`. Real DynamoDB serialises conflicting
transactions; a global lock around each request gives the same guarantee here, so the service's
concurrency tests test the service, not the emulator. Connections are still served by threads.

For profiling, `GET /__counts` returns how many requests of each operation were served and the
seconds spent in each (`POST /__counts` also resets them): with one request at a time, that is
where the endpoint's time goes.
"""
import json
import sys
import threading
import time

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


class Serialized:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.counts = {}

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == "/__counts":
            with self.lock:
                body = json.dumps(self.counts, sort_keys=True).encode()
                if environ.get("REQUEST_METHOD") == "POST":
                    self.counts = {}
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        operation = environ.get("HTTP_X_AMZ_TARGET", "other").split(".")[-1]
        with self.lock:
            started = time.perf_counter()
            # Materialise the body inside the lock so the whole request is applied atomically.
            body = b"".join(self.app(environ, start_response))
            count, seconds = self.counts.get(operation, (0, 0.0))
            self.counts[operation] = (count + 1, seconds + time.perf_counter() - started)
            return [body]


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, Serialized(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
