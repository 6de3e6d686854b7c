"""`{{name}}`: a Porthole DNS provider (world `dns-provider`) for the PowerDNS Authoritative
HTTP API. PowerDNS has no record ids: a record is an rrset, identified as `<name>./<TYPE>`.

Settings: `api_url` (e.g. `http://127.0.0.1:8081`), `api_key`, `server_id` (default `localhost`).
"""

# Every module is imported here, at build time: componentize-py bundles only what the code
# imports while it is built.
import json

import httpclient
from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.dns import StoredRecord
from wit_world.imports import host
from wit_world.imports.porthole_plugin_types import DnsRecord, ErrorKind, PluginError, RecordKind

TYPES = {RecordKind.A: "A", RecordKind.AAAA: "AAAA", RecordKind.CNAME: "CNAME", RecordKind.TXT: "TXT"}
KINDS = {name: kind for kind, name in TYPES.items()}
STATUS_KINDS = {400: ErrorKind.INVALID_INPUT, 401: ErrorKind.UNAUTHORIZED, 403: ErrorKind.UNAUTHORIZED,
                404: ErrorKind.NOT_FOUND, 409: ErrorKind.CONFLICT, 422: ErrorKind.INVALID_INPUT,
                429: ErrorKind.RATE_LIMITED}


def fail(kind: ErrorKind, message: str):
    raise Err(PluginError(kind=kind, message=message))


def guarded(method):
    """Anything raised that is not the contract's error (a bug, or an import's own error left
    uncaught) is reported as `internal`: raised as it is, it would crash the call."""
    def call(self, *args):
        try:
            return method(self, *args)
        except Err as err:
            if isinstance(err.value, PluginError):
                raise
            fail(ErrorKind.INTERNAL, f"uncaught {err.value!r}")
        except Exception as err:  # noqa: BLE001
            fail(ErrorKind.INTERNAL, f"{type(err).__name__}: {err}")
    return call


def absolute(name: str) -> str:
    return name.rstrip(".") + "."


class Api:
    def __init__(self):
        def required(key):
            value = host.setting(key)
            if not value:
                fail(ErrorKind.INVALID_INPUT, f"the setting `{key}` is not set")
            return value
        url = required("api_url").rstrip("/")
        self.key = required("api_key")
        self.server = host.setting("server_id") or "localhost"
        self.url = url

    def zone_url(self, zone: str) -> str:
        return f"{self.url}/api/v1/servers/{self.server}/zones/{absolute(zone)}"

    def send(self, method: str, zone: str, body=None) -> bytes:
        headers = {"x-api-key": self.key, "content-type": "application/json", "accept": "application/json"}
        data = json.dumps(body).encode() if body is not None else b""
        try:
            status, answer = httpclient.send(method, self.zone_url(zone), headers, data)
        except httpclient.HttpError as err:
            fail(ErrorKind.UPSTREAM, f"PowerDNS could not be reached: {err}")
        if 200 <= status < 300:
            return answer
        detail = answer[:200].decode(errors="replace")
        fail(STATUS_KINDS.get(status, ErrorKind.UPSTREAM), f"PowerDNS answered {status}: {detail}")


def to_zone_file(kind: RecordKind, content: str) -> str:
    """PowerDNS wants CNAME targets absolute and TXT data quoted."""
    if kind == RecordKind.CNAME:
        return absolute(content)
    if kind == RecordKind.TXT:
        return '"' + content.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return content


def from_zone_file(kind: RecordKind, content: str) -> str:
    if kind == RecordKind.CNAME:
        return content.rstrip(".")
    if kind == RecordKind.TXT:
        return content.strip('"').replace('\\"', '"').replace("\\\\", "\\")
    return content


class Dns(exports.Dns):
    @guarded
    def upsert_record(self, zone: str, entry: DnsRecord) -> str:
        api = Api()
        name, kind = absolute(entry.name), TYPES[entry.kind]
        rrset = {"name": name, "type": kind, "ttl": 300 if entry.ttl <= 1 else entry.ttl,
                 "changetype": "REPLACE",
                 "records": [{"content": to_zone_file(entry.kind, entry.content), "disabled": False}]}
        api.send("PATCH", zone, {"rrsets": [rrset]})
        host.log(host.LogLevel.INFO, f"upserted {name} {kind}")
        return f"{name}/{kind}"

    @guarded
    def delete_record(self, zone: str, id: str) -> None:
        api = Api()
        name, slash, kind = id.rpartition("/")
        if not slash:
            fail(ErrorKind.INVALID_INPUT, f"bad record id {id!r}")
        # Deleting an rrset that does not exist succeeds: PowerDNS ignores it.
        api.send("PATCH", zone, {"rrsets": [{"name": name, "type": kind, "changetype": "DELETE"}]})

    @guarded
    def list_records(self, zone: str) -> list:
        api = Api()
        try:
            data = json.loads(api.send("GET", zone))
        except ValueError as err:
            fail(ErrorKind.UPSTREAM, f"PowerDNS sent unusable JSON: {err}")
        listed = []
        for rrset in data.get("rrsets", []):
            kind = KINDS.get(rrset.get("type"))
            if kind is None:
                continue  # SOA, NS, MX…: not Porthole's
            for record in rrset.get("records", []):
                entry = DnsRecord(name=rrset["name"].rstrip("."), kind=kind,
                                  content=from_zone_file(kind, record.get("content", "")),
                                  ttl=rrset.get("ttl", 300), proxied=False)
                listed.append(StoredRecord(id=f"{rrset['name']}/{rrset['type']}", entry=entry))
        return listed
