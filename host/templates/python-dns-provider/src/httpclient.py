"""A small blocking HTTP client over `wasi:http/outgoing-handler`, the sandbox's only way out.
Porthole lets a request through only to the origins the plugin's `allowed_hosts` list."""

from componentize_py_types import Err
from wit_world.imports import outgoing_handler, streams
from wit_world.imports import wasi_http_types as http

# Responses larger than this are refused rather than read.
MAX_BODY = 4 * 1024 * 1024

METHODS = {"GET": http.Method_Get, "POST": http.Method_Post, "PUT": http.Method_Put,
           "PATCH": http.Method_Patch, "DELETE": http.Method_Delete}


class HttpError(Exception):
    """The request could not be made or answered."""


def send(method: str, url: str, headers: dict, body: bytes = b"") -> tuple:
    """Sends one request and returns (status, body)."""
    scheme, _, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    fields = http.Fields.from_list([(name.lower(), value.encode()) for name, value in headers.items()])
    request = http.OutgoingRequest(fields)
    request.set_method(METHODS[method]())
    request.set_scheme(http.Scheme_Https() if scheme == "https" else http.Scheme_Http())
    request.set_authority(authority)
    request.set_path_with_query(slash + path or "/")
    outgoing = request.body()
    try:
        future = outgoing_handler.handle(request, None)
        with outgoing.write() as stream:
            for start in range(0, len(body), 4096):
                stream.blocking_write_and_flush(body[start:start + 4096])
        http.OutgoingBody.finish(outgoing, None)
    except Err as failed:
        # Refused by Porthole's egress policy, or the connection went away while sending.
        raise HttpError(f"sending: {failed.value}") from None
    with future:
        with future.subscribe() as ready:
            ready.block()
        answer = future.get()
    if answer is None or isinstance(answer.value, Err) or isinstance(answer, Err):
        raise HttpError(f"no response: {answer}")
    response = answer.value.value
    with response:
        status = response.status()
        incoming = response.consume()
        data = bytearray()
        with incoming.stream() as stream:
            while True:
                try:
                    data += stream.blocking_read(65536)
                except Err as end:
                    if isinstance(end.value, streams.StreamError_Closed):
                        break
                    raise HttpError(f"reading the response: {end.value}") from None
                if len(data) > MAX_BODY:
                    raise HttpError(f"response larger than {MAX_BODY} bytes")
    return status, bytes(data)
