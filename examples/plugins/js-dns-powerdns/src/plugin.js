// js-dns-powerdns: a Porthole DNS provider (world `dns-provider`) for the PowerDNS Authoritative HTTP
// API. PowerDNS has no record ids: a record is an rrset, identified as `<name>./<TYPE>`.
//
// Settings: `api_url` (e.g. `http://127.0.0.1:8081`), `api_key`, `server_id` (default
// `localhost`).

import { log, setting } from 'porthole:plugin/host@0.1.1';

// WIT enums are their case names; PowerDNS wants record types in upper case.
const TYPES = { a: 'A', aaaa: 'AAAA', cname: 'CNAME', txt: 'TXT' };
const KINDS = Object.fromEntries(Object.entries(TYPES).map(([kind, type]) => [type, kind]));

// A failure the contract names: thrown, it becomes the function's `plugin-error`.
class PluginError extends Error {
  constructor(kind, message) {
    super(message);
    this.payload = { kind, message };
  }
}

// Every export goes through here: anything thrown that is not a PluginError (a bug, a
// TypeError) is reported as `internal` rather than crashing the call.
function guarded(f) {
  return async (...args) => {
    try {
      return await f(...args);
    } catch (err) {
      if (err instanceof PluginError) throw err;
      throw new PluginError('internal', `${err}`);
    }
  };
}

function api() {
  const required = (key) => {
    const value = setting(key);
    if (!value) throw new PluginError('invalid-input', `the setting \`${key}\` is not set`);
    return value;
  };
  const url = required('api_url').replace(/\/+$/, '');
  const server = setting('server_id') ?? 'localhost';
  return { key: required('api_key'), zoneUrl: (zone) => `${url}/api/v1/servers/${server}/zones/${absolute(zone)}` };
}

// The response when its status is a success, else the error kind that status means.
async function send(method, url, key, body) {
  let response;
  try {
    response = await fetch(url, {
      method,
      headers: { 'x-api-key': key, 'content-type': 'application/json', accept: 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new PluginError('upstream', `PowerDNS could not be reached: ${err}`);
  }
  if (response.ok) return response;
  const kind = { 400: 'invalid-input', 401: 'unauthorized', 403: 'unauthorized', 404: 'not-found',
    409: 'conflict', 422: 'invalid-input', 429: 'rate-limited' }[response.status] ?? 'upstream';
  const detail = (await response.text()).slice(0, 200);
  throw new PluginError(kind, `PowerDNS answered ${response.status}: ${detail}`);
}

const absolute = (name) => `${name.replace(/\.+$/, '')}.`;

// PowerDNS wants CNAME targets absolute and TXT data quoted.
function toZoneFile(kind, content) {
  if (kind === 'cname') return absolute(content);
  if (kind === 'txt') return `"${content.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
  return content;
}

function fromZoneFile(kind, content) {
  if (kind === 'cname') return content.replace(/\.+$/, '');
  if (kind === 'txt') return content.replace(/^"|"$/g, '').replaceAll('\\"', '"').replaceAll('\\\\', '\\');
  return content;
}

export const dns = {
  upsertRecord: guarded(async (zone, entry) => {
    const { key, zoneUrl } = api();
    const name = absolute(entry.name);
    const type = TYPES[entry.kind];
    const rrset = {
      name,
      type,
      ttl: entry.ttl <= 1 ? 300 : entry.ttl,
      changetype: 'REPLACE',
      records: [{ content: toZoneFile(entry.kind, entry.content), disabled: false }],
    };
    await send('PATCH', zoneUrl(zone), key, { rrsets: [rrset] });
    log('info', `upserted ${name} ${type}`);
    return `${name}/${type}`;
  }),

  deleteRecord: guarded(async (zone, id) => {
    const { key, zoneUrl } = api();
    const slash = id.lastIndexOf('/');
    if (slash < 0) throw new PluginError('invalid-input', `bad record id ${JSON.stringify(id)}`);
    // Deleting an rrset that does not exist succeeds: PowerDNS ignores it.
    const rrset = { name: id.slice(0, slash), type: id.slice(slash + 1), changetype: 'DELETE' };
    await send('PATCH', zoneUrl(zone), key, { rrsets: [rrset] });
  }),

  listRecords: guarded(async (zone) => {
    const { key, zoneUrl } = api();
    const response = await send('GET', zoneUrl(zone), key);
    let data;
    try {
      data = await response.json();
    } catch (err) {
      throw new PluginError('upstream', `PowerDNS sent unusable JSON: ${err}`);
    }
    const listed = [];
    for (const rrset of data.rrsets ?? []) {
      const kind = KINDS[rrset.type];
      if (!kind) continue; // SOA, NS, MX…: not Porthole's
      for (const record of rrset.records ?? []) {
        listed.push({
          id: `${rrset.name}/${rrset.type}`,
          entry: {
            name: rrset.name.replace(/\.+$/, ''),
            kind,
            content: fromZoneFile(kind, record.content ?? ''),
            ttl: rrset.ttl ?? 300,
            proxied: false,
          },
        });
      }
    }
    return listed;
  }),
};
