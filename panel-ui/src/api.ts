// The daemon's JSON API: same-origin fetches with the session cookie. Browsers send `Origin` on
// these POSTs, which the daemon checks on every cookie-authenticated state change.

export class ApiError extends Error {
  constructor(public status: number, message: string) {
    super(message);
  }
}

let sessionEnded: () => void = () => {};

/** What to do when the daemon no longer knows the browser's session (it expired, or was ended). */
export function onSessionEnded(handler: () => void): void {
  sessionEnded = handler;
}

export async function api<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method, credentials: 'same-origin', headers: {} };
  if (body !== undefined) {
    (init.headers as Record<string, string>)['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(`/api/v1${path}`, init);
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  let data: unknown = undefined;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = undefined;
  }
  if (!response.ok) {
    const reason = (data as { error?: string } | undefined)?.error ?? response.statusText;
    // A wrong password at sign-in is a 401 too, and asking who is signed in is how we find out.
    if (response.status === 401 && path !== '/auth/login' && path !== '/whoami') sessionEnded();
    throw new ApiError(response.status, reason);
  }
  return data as T;
}

export interface Me {
  id: number;
  username: string;
  role: 'admin' | 'customer';
}

export interface CustomerVm {
  id: number;
  name: string;
  state: string;
  plan: string | null;
  power: string;
  cores: number | null;
  memory_bytes: number | null;
  disk_bytes: number | null;
  /** Present once the VM's tunnel gives it a public name. */
  ssh?: SshAccess | null;
  actions: VmActions;
}

/** What the VM's owner may do with it now, as the daemon rules: the panel enables exactly these. */
export interface VmActions {
  /** The power actions that would do something now (`start`, `shutdown`, `reboot`, `stop`). */
  power: string[];
  console: boolean;
  /** Why the console cannot be opened, or the VM used at all. */
  unavailable: string | null;
}

export interface SshAccess {
  user: string;
  host: string;
  /** What carries SSH through the tunnel provider, e.g. `cloudflared access ssh --hostname %h`. */
  proxy_command?: string | null;
}

export interface ConsoleTicket {
  url: string;
  token: string;
  expires_at: number;
}

/** Plain words for a refused or failed request. */
export function explain(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.status === 401) return 'Please sign in again.';
    if (err.status === 403) return 'This page is for operators only.';
    if (err.status === 404) return 'Not found.';
    if (err.status === 429) return `Limit reached: ${err.message}.`;
    return err.message.charAt(0).toUpperCase() + err.message.slice(1) + '.';
  }
  return 'The panel cannot reach the server. Check your connection and try again.';
}
