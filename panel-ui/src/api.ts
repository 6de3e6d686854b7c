// The daemon's JSON API: a client typed by the daemon's own OpenAPI document (`../docs/openapi.json`,
// turned into `api-types.ts` by `npm run api-types`), making same-origin fetches with the session
// cookie. Browsers send `Origin` on these POSTs, which the daemon checks on every
// cookie-authenticated state change.
import createClient from 'openapi-fetch';
import type { components, paths } from './api-types';

/** Every object the API takes or answers, by its name in the document, e.g. `Schemas['CustomerVm']`. */
export type Schemas = components['schemas'];

export class ApiError extends Error {
  constructor(public status: number, message: string) {
    super(message);
  }
}

let sessionEnded: () => void = () => {};
let forbidden: () => void = () => {};

/** What to do when the daemon no longer knows the browser's session (it expired, or was ended). */
export function onSessionEnded(handler: () => void): void {
  sessionEnded = handler;
}

/**
 * What to do when the daemon refuses a request (403): an operator's session may have to enrol a
 * second factor before anything else (`whoami` says so), which the panel then asks for.
 */
export function onForbidden(handler: () => void): void {
  forbidden = handler;
}

const BASE = '/api/v1';

/**
 * The API, e.g. `unwrap(api.GET('/vms/{id}', { params: { path: { id } } }))`: paths, parameters,
 * bodies and answers are all checked against the document. Answers are JSON (the audit export's
 * other formats are downloads, not fetched here).
 */
export const api = createClient<paths, 'application/json'>({ baseUrl: BASE, credentials: 'same-origin' });

/** Which page is shown: each navigation makes a new one. */
let page = 0;

/**
 * A new page is shown. Answers still on their way to the page before are dropped: the code that
 * waits for them never runs, so a page the person has left never draws over the one they went to.
 */
export function pageChanged(): void {
  page += 1;
}

/**
 * A wrong password or code at sign-in is a 401 too (everything under `/auth/`: the password, the
 * second factor, a sign-in that expired), and asking who is signed in is how we find out.
 */
function endsSession(path: string): boolean {
  return !path.startsWith(`${BASE}/auth/`) && path !== `${BASE}/whoami`;
}

/**
 * What a call on `api` resolves to: the answer, or the error body (`{ "error": "reason" }` as
 * the document says; at run time whatever came, e.g. a proxy's page, or nothing) with the response.
 */
type Outcome<D> = { data: D; error?: never; response: Response } | { data?: never; error: Schemas['ErrorBody']; response: Response };

/**
 * The answer of a call on `api`, or an `ApiError` with the status and the daemon's reason (its
 * error body is `{ "error": "reason" }`; anything else, e.g. a proxy's page, gives the status
 * text). A 401 means the session ended, unless it answered a sign-in or the question who is
 * signed in: the session-ended handler hears of it before the error is thrown, as the forbidden
 * handler hears of a 403. For a page that is no longer shown, neither: see `pageChanged`.
 */
export async function unwrap<D>(call: Promise<Outcome<D>>): Promise<D> {
  const asked = page;
  const left = () => page !== asked;
  let outcome: Outcome<D>;
  try {
    outcome = await call;
  } catch (err) {
    if (left()) return new Promise<never>(() => {});
    throw err;
  }
  if (left()) return new Promise<never>(() => {});
  const { response } = outcome;
  if (response.ok && outcome.error === undefined) return outcome.data;
  const body: unknown = outcome.error;
  const reason = typeof body === 'object' && body !== null && 'error' in body && typeof body.error === 'string'
    ? body.error
    : response.statusText;
  if (response.status === 401 && endsSession(new URL(response.url, location.href).pathname)) sessionEnded();
  if (response.status === 403) forbidden();
  throw new ApiError(response.status, reason);
}

/**
 * The daemon's reason as a sentence: capitalised, with a full stop. One that starts with a host
 * name (`mail.example.net does not resolve`) keeps it as it is written.
 */
export function sentence(reason: string): string {
  const text = /^\S*\.\S/.test(reason) ? reason : reason.charAt(0).toUpperCase() + reason.slice(1);
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

/**
 * Plain words for a refused request about the person's own account (their password, tokens,
 * second factors): there a 403 is about the request (a wrong password), not the page.
 */
export function refusal(err: unknown): string {
  if (err instanceof ApiError && err.status === 403) return sentence(err.message);
  return explain(err);
}

/** Plain words for a refused or failed request. */
export function explain(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.status === 401) return 'Please sign in again.';
    if (err.status === 403) return 'This page is for operators only.';
    if (err.status === 404) return 'Not found.';
    if (err.status === 429) return `Limit reached: ${err.message}.`;
    return sentence(err.message);
  }
  return 'The panel cannot reach the server. Check your connection and try again.';
}

/**
 * A new `Idempotency-Key`: one per confirmed request, so the same request sent twice (a double
 * submit, a retry after a lost answer) is done once. Made from `getRandomValues`, which, unlike
 * `randomUUID`, also works on a panel served over plain HTTP.
 */
export function idempotencyKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
