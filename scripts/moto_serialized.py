"""moto's DynamoDB server with every request applied one at a time.

moto's TransactWriteItems checks conditions and writes without a lock, so two concurrent
transactions could both pass `attribute_not_exists`. Real DynamoDB serialises conflicting
transactions; a global lock around each request gives the same guarantee here, so the service's
concurrency tests test the service, not the emulator. Connections are still served by threads.
"""
import sys
import threading

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

    def __call__(self, environ, start_response):
        with self.lock:
            # Materialise the body inside the lock so the whole request is applied atomically.
            return [b"".join(self.app(environ, start_response))]


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, Serialized(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
