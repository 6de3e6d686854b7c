// The signed-in person's own account: their password, their second factors, their API tokens
// (each shown once, when it is made) and what they did themselves (sign-ins, consoles, power,
// orders, tokens), newest first. An operator who must enrol a second factor is sent to a page of
// second factors alone, and goes on from there.
import { api, ApiError, explain, refusal, type Schemas, unwrap } from '../api';
import { confirmDialog, details, field, h, mount, notice, say, table, time } from '../dom';
import { currentUser, mustEnrolSecondFactor, panelPath, signedIn } from '../main';
import { showSecondFactors } from './factors';

type Scope = Schemas['Scope'];
type Role = Schemas['Role'];

/** Links between the account's pages. */
export function accountNav(current: 'account' | 'activity' | 'factors' | 'ssh-keys'): HTMLElement {
  return h('nav', { class: 'subnav', 'aria-label': 'Account pages' },
    h('a', { href: '/account', 'aria-current': current === 'account' ? 'page' : undefined }, 'Sign-in and API tokens'),
    h('a', { href: '/account/ssh-keys', 'aria-current': current === 'ssh-keys' ? 'page' : undefined }, 'SSH keys'),
    h('a', { href: '/account/activity', 'aria-current': current === 'activity' ? 'page' : undefined }, 'My activity'));
}

/** `/account`: change the password; second factors; list, create and revoke API tokens. */
export async function accountPage(): Promise<void> {
  const me = currentUser();
  if (!me) return;
  mount(h('h1', {}, 'Account'), notice('info', 'Loading…'));
  let tokens: Schemas['ApiToken'][];
  try {
    tokens = await unwrap(api.GET('/tokens'));
  } catch (err) {
    mount(h('h1', {}, 'Account'), accountNav('account'), notice('error', explain(err)));
    return;
  }
  const tokensBox = h('section', { 'aria-labelledby': 'tokens-h' });
  showTokens(tokensBox, me.role, tokens);
  const factorsBox = h('section', { 'aria-labelledby': 'factors-h', id: 'second-factors' });
  mount(h('h1', {}, 'Account'), accountNav('account'),
    h('p', {}, `Signed in as ${me.username} (${me.role === 'admin' ? 'operator' : 'customer'}).`),
    passwordForm(),
    factorsBox,
    tokensBox);
  await showSecondFactors(factorsBox);
}

/**
 * `/account/second-factors`: the second factors alone. An operator who must enrol one first is
 * sent here from any page (`next` says which): the page says why, and once one is enrolled and
 * its recovery codes shown, leads on there.
 */
export async function secondFactorsPage(): Promise<void> {
  const me = currentUser();
  if (!me) return;
  const box = h('section', { 'aria-labelledby': 'factors-h', id: 'second-factors' });
  if (!mustEnrolSecondFactor()) {
    mount(h('h1', {}, 'Second factors'), accountNav('factors'), box);
    await showSecondFactors(box);
    return;
  }
  const next = panelPath(new URLSearchParams(location.search).get('next'));
  mount(h('h1', {}, 'Set up a second factor'),
    h('p', { class: 'notice warning', id: 'enrol-required' },
      'This panel requires operators to sign in with a second factor, and your account has none yet. ',
      'Until you set one up, everything else is refused to this session. ',
      'Set up an authenticator app or a passkey here; then you can go on to ', h('code', {}, next), '.'),
    box);
  await showSecondFactors(box, {
    firstEnrolled: async () => {
      await signedIn();
      const told = document.getElementById('enrol-required');
      if (told) {
        told.className = 'notice ok';
        told.replaceChildren('Your second factor is set up: this session can use the panel again.');
      }
      return h('div', { class: 'continue' },
        h('p', {}, 'Your second factor is set up. Once your recovery codes are saved, go on.'),
        h('a', { class: 'button', href: next, id: 'enrol-continue' }, `Continue to ${next}`));
    },
  });
}

function passwordForm(): HTMLElement {
  const current = h('input', { name: 'current_password', type: 'password', autocomplete: 'current-password', required: true });
  const next = h('input', { name: 'new_password', type: 'password', autocomplete: 'new-password', required: true, minlength: 10, 'aria-describedby': 'new-password-hint' });
  const again = h('input', { name: 'new_password_again', type: 'password', autocomplete: 'new-password', required: true, minlength: 10 });
  const status = notice();
  status.id = 'password-status';
  status.tabIndex = -1;
  const submit = h('button', { type: 'submit' }, 'Change password');
  const form = h('form', { class: 'card', 'aria-labelledby': 'password-h' },
    h('h2', { id: 'password-h', class: 'card-title' }, 'Password'),
    field('Current password', current),
    field('New password', next),
    h('p', { class: 'hint', id: 'new-password-hint' }, 'At least 10 characters. Changing it signs you out everywhere else.'),
    field('New password again', again),
    status, submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (again.value !== next.value) {
      say(status, 'The two new passwords differ. Type the same one twice.', 'error');
      again.select();
      return;
    }
    submit.disabled = true;
    say(status, 'Changing the password…', 'info');
    try {
      await unwrap(api.POST('/account/password', { body: { current_password: current.value, new_password: next.value } }));
      form.reset();
      say(status, 'Password changed. Every other session of this account has been signed out.', 'ok');
      status.focus();
    } catch (err) {
      say(status, refusal(err), 'error');
      if (err instanceof ApiError && err.status === 403) current.select();
      else status.focus();
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

/** The scopes a token may have, and what each lets it do for someone of `role`. */
function scopeChoices(role: Role): [Scope, string][] {
  const choices: [Scope, string][] = [
    ['read', 'see everything you can see (every GET)'],
    ['orders', 'order VMs'],
    ['lifecycle', role === 'admin'
      ? 'power, consoles, suspending, unsuspending, terminating and changing plans, retrying and cancelling jobs'
      : 'power actions and consoles'],
  ];
  if (role === 'admin') choices.push(['admin', 'every other change: accounts, plans, templates, quotas, plugins']);
  return choices;
}

/** Fills `box` with the tokens, the one just made (shown this once) and the form for another. */
function showTokens(box: HTMLElement, role: Role, tokens: Schemas['ApiToken'][], created?: Schemas['CreatedToken'], said?: string): void {
  const status = notice(said ? 'ok' : 'info', said ?? '');
  status.id = 'tokens-status';
  status.tabIndex = -1;
  // Shows the list afresh; should it not come, the list as it must be now (a new token's secret
  // is shown whatever happens: there is no other chance).
  const reload = async (expected: Schemas['ApiToken'][], made?: Schemas['CreatedToken'], text?: string) => {
    let list = expected;
    try {
      list = await unwrap(api.GET('/tokens'));
    } catch { /* keep the expected list */ }
    showTokens(box, role, list, made, text);
  };
  const revoke = async (token: Schemas['ApiToken']) => {
    if (!(await confirmDialog(`Revoke the token “${token.name}”? Anything using it stops working at once.`, 'Revoke token'))) return;
    try {
      await unwrap(api.DELETE('/tokens/{id}', { params: { path: { id: token.id } } }));
      await reload(tokens.filter((t) => t.id !== token.id), undefined, `Token “${token.name}” revoked.`);
      document.getElementById('tokens-status')?.focus();
    } catch (err) {
      say(status, refusal(err), 'error');
      status.focus();
    }
  };
  const now = Date.now() / 1000;
  const rows = tokens.map((t) => [
    t.name,
    t.scopes.join(', '),
    time(t.created_at),
    t.expires_at ? `${t.expires_at < now ? 'expired ' : ''}${time(t.expires_at)}` : 'never',
    t.last_used_at ? time(t.last_used_at) : 'never',
    h('button', { type: 'button', class: 'small danger', 'aria-label': `Revoke the token ${t.name}`, onclick: () => void revoke(t) }, 'Revoke'),
  ]);

  const name = h('input', { name: 'name', required: true, maxlength: 64, autocomplete: 'off' });
  const scopes = scopeChoices(role).map(([scope, what]) =>
    [scope, h('input', { type: 'checkbox', name: 'scopes', value: scope, checked: scope === 'read' }), what] as const);
  const days = h('input', { name: 'expires_in_days', type: 'number', min: 1, max: 3650, step: 1, value: 90, class: 'tiny', 'aria-describedby': 'expiry-hint' });
  const formStatus = notice();
  const submit = h('button', { type: 'submit' }, 'Create token');
  const form = h('form', { class: 'card', 'aria-labelledby': 'new-token-form-h' },
    h('h3', { id: 'new-token-form-h', class: 'card-title' }, 'Create a token'),
    field('Token name', name),
    h('fieldset', { class: 'scopes' }, h('legend', {}, 'Scopes: what the token may do'),
      ...scopes.map(([scope, box, what]) => h('label', { class: 'check' }, box, h('span', {}, h('strong', {}, scope), ` — ${what}`)))),
    field('Expires after (days)', days),
    h('p', { class: 'hint', id: 'expiry-hint' }, '1 to 3650 days; empty: the token never expires.'),
    formStatus, submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const chosen = scopes.filter(([, box]) => box.checked).map(([scope]) => scope);
    if (chosen.length === 0) {
      say(formStatus, 'Choose at least one scope.', 'error');
      return;
    }
    submit.disabled = true;
    say(formStatus, 'Creating the token…', 'info');
    try {
      const made = await unwrap(api.POST('/tokens', { body: {
        name: name.value, scopes: chosen, expires_in_days: days.value ? Number(days.value) : undefined,
      } }));
      await reload([...tokens, made.metadata], made);
      document.getElementById('new-token-value')?.focus();
    } catch (err) {
      say(formStatus, refusal(err), 'error');
      submit.disabled = false;
    }
  });

  box.replaceChildren(
    h('h2', { id: 'tokens-h' }, 'API tokens'),
    h('p', { class: 'hint' }, 'A token lets a program use the API as you, within its scopes: it sends the header Authorization: Bearer followed by the token.'),
    ...(created ? [newToken(created)] : []),
    status,
    rows.length ? table(['Name', 'Scopes', 'Created', 'Expires', 'Last used', 'Action'], rows, 'Your API tokens') : h('p', {}, 'You have no API tokens.'),
    form,
  );
}

/** The token just made: shown this once, with a button that copies it. */
function newToken(created: Schemas['CreatedToken']): HTMLElement {
  const value = h('input', { id: 'new-token-value', class: 'secret', readonly: true, value: created.token, spellcheck: 'false', autocomplete: 'off', 'aria-describedby': 'new-token-warning' });
  value.addEventListener('focus', () => value.select());
  const copied = h('span', { role: 'status', class: 'hint' });
  const copy = h('button', { type: 'button', class: 'secondary', onclick: async () => {
    try {
      await navigator.clipboard.writeText(created.token);
      copied.textContent = 'Copied.';
    } catch {
      value.focus();
      copied.textContent = 'Selected: copy it with Ctrl+C (⌘C on a Mac).';
    }
  } }, 'Copy token');
  return h('div', { class: 'card new-token', role: 'region', 'aria-labelledby': 'new-token-h' },
    h('h3', { id: 'new-token-h', class: 'card-title' }, `New token “${created.metadata.name}”`),
    h('p', { class: 'notice warning', id: 'new-token-warning' }, 'Copy it now and keep it safe: it will not be shown again.'),
    field('Token', value),
    h('div', { class: 'actions' }, copy, copied));
}

/** The activity page's filters: an `action` family for the daemon, and its label. */
const FAMILIES: [string, string][] = [
  ['', 'Everything'], ['auth', 'Sign-ins'], ['console', 'Consoles'], ['vm.power', 'Power'],
  ['job.provision', 'Orders'], ['token', 'API tokens'], ['ssh_key', 'SSH keys'], ['account', 'Account changes'],
];

/** Plain words for each action the activity lists; any other shows as the daemon names it. */
const ACTIONS: Record<string, string> = {
  'auth.login': 'Signed in',
  'auth.logout': 'Signed out',
  'console.open': 'Opened a console',
  'console.close': 'Console closed',
  'console.refused': 'Console refused',
  'console.close_requested': 'Closed a console session',
  'vm.power': 'Power action',
  'job.provision': 'Ordered a VM',
  'token.create': 'Created an API token',
  'token.delete': 'Revoked an API token',
  'account.password': 'Changed the password',
  'job.reinstall': 'Reinstalled a VM',
  'service.reinstalled': 'VM reinstalled',
  'job.snapshot': 'Took a snapshot',
  'job.rollback': 'Rolled back to a snapshot',
  'job.delete_snapshot': 'Deleted a snapshot',
  'vm.snapshot_taken': 'Snapshot taken',
  'vm.snapshot_rolled_back': 'Rolled back to a snapshot',
  'vm.snapshot_removed': 'Snapshot deleted',
  'vm.password_reset': 'Reset a VM password',
  'ssh_key.added': 'Added an SSH key',
  'ssh_key.removed': 'Removed an SSH key',
};

const POWER: Record<string, string> = { start: 'Start', stop: 'Force stop', shutdown: 'Shut down', reboot: 'Reboot' };
const KINDS: Record<string, string> = { vnc: 'VNC console', term: 'Terminal' };
const CLOSE_REASONS: Record<string, string> = {
  browser_closed: 'closed in the browser',
  browser_unresponsive: 'the browser stopped answering',
  closed_by_operator: 'closed by an operator',
  idle: 'closed after inactivity',
  lifetime: 'reached its time limit',
  shutdown: 'the server restarted',
  suspended: 'the VM was suspended',
  terminated: 'the VM was terminated',
};

const PAGE_SIZE = 50;

function activityUrl(family: string, before?: number): string {
  const query = new URLSearchParams();
  if (family) query.set('action', family);
  if (before) query.set('before', String(before));
  const text = query.toString();
  return text ? `/account/activity?${text}` : '/account/activity';
}

/** `12 s`, `3 min 5 s`, `2 h 10 min`. */
function duration(secs: number): string {
  if (secs < 60) return `${secs} s`;
  if (secs < 3600) return `${Math.floor(secs / 60)} min ${secs % 60} s`;
  return `${Math.floor(secs / 3600)} h ${Math.floor((secs % 3600) / 60)} min`;
}

/** A text field of an entry's detail. */
function text(entry: Schemas['Activity'], key: string): string | undefined {
  const value = entry.detail[key];
  return typeof value === 'string' ? value : undefined;
}

/** A number field of an entry's detail. */
function number(entry: Schemas['Activity'], key: string): number | undefined {
  const value = entry.detail[key];
  return typeof value === 'number' ? value : undefined;
}

/** What is worth knowing about an entry, in words (wide enough to read on a phone). */
function describe(entry: Schemas['Activity']): HTMLElement | string {
  const said = summary(entry);
  return typeof said === 'string' && said ? h('span', { class: 'detail-text' }, said) : said;
}

function summary(entry: Schemas['Activity']): HTMLElement | string {
  const detail = entry.detail;
  const words = (...parts: (string | undefined | false)[]) => parts.filter(Boolean).join(', ');
  const kind = text(entry, 'kind');
  const reason = text(entry, 'reason');
  const secs = number(entry, 'duration_secs');
  switch (entry.action) {
    case 'vm.power': {
      const action = text(entry, 'action');
      return action ? POWER[action] ?? action : '';
    }
    case 'console.open':
      return kind ? KINDS[kind] ?? kind : '';
    case 'console.close':
      return words(kind && (KINDS[kind] ?? kind), secs !== undefined && `open ${duration(secs)}`, reason && (CLOSE_REASONS[reason] ?? reason.replace(/_/g, ' ')));
    case 'console.refused':
      return words(kind && (KINDS[kind] ?? kind), reason?.replace(/_/g, ' '));
    case 'token.create': {
      // The token itself is named in the target.
      const scopes = detail.scopes;
      const expires = number(entry, 'expires_at');
      return words(Array.isArray(scopes) && `scopes ${scopes.filter((s) => typeof s === 'string').join(', ')}`,
        expires ? `expires ${time(expires)}` : 'never expires');
    }
    case 'token.delete':
      return '';
    default:
      return details(detail);
  }
}

/** What an entry was done to: one of the caller's VMs (by name, when known), a token or an SSH key (by name). */
function target(entry: Schemas['Activity'], names: Map<number, string>): HTMLElement | string {
  const [kind, id] = (entry.target ?? '').split(':');
  const service = Number(id);
  if (kind === 'service' && Number.isInteger(service)) return h('a', { href: `/vms/${service}` }, names.get(service) ?? `VM ${service}`);
  const name = text(entry, 'name');
  if (kind === 'token') return name ? `API token “${name}”` : 'API token';
  if (kind === 'ssh_key') return name ? `SSH key “${name}”` : 'SSH key';
  return entry.target ?? '';
}

/** The caller's VMs by service id, to name the targets; without them, targets show as ids. */
async function vmNames(): Promise<Map<number, string>> {
  try {
    const answer = await unwrap(api.GET('/vms'));
    // Operators get every VM on the clusters, with the service of each that has one.
    if ('unreachable' in answer) {
      return new Map(answer.vms.flatMap((vm): [number, string][] => (vm.service ? [[vm.service.id, vm.service.name]] : [])));
    }
    return new Map(answer.vms.map((vm): [number, string] => [vm.id, vm.name]));
  } catch {
    return new Map();
  }
}

/** `/account/activity[?action=…&before=…]`: the caller's own entries, newest first, a page at a time. */
export async function activityPage(): Promise<void> {
  const query = new URLSearchParams(location.search);
  const asked = query.get('action') ?? '';
  const family = FAMILIES.find(([value]) => value === asked)?.[0] ?? '';
  const before = Number(query.get('before')) || undefined;
  mount(h('h1', {}, 'My activity'), notice('info', 'Loading…'));
  let entries: Schemas['Activity'][];
  let names: Map<number, string>;
  try {
    [entries, names] = await Promise.all([
      unwrap(api.GET('/account/activity', { params: { query: { action: family || undefined, before, limit: PAGE_SIZE } } })),
      vmNames(),
    ]);
  } catch (err) {
    mount(h('h1', {}, 'My activity'), accountNav('activity'), notice('error', explain(err)));
    return;
  }
  const show = h('select', { name: 'action', id: 'activity-action' },
    ...FAMILIES.map(([value, label]) => h('option', { value, selected: value === family }, label)));
  const form = h('form', { class: 'inline card', role: 'search', 'aria-label': 'Filter my activity' },
    field('Show', show), h('button', { type: 'submit' }, 'Filter'));
  const reopen = (url: string, focus: string) => {
    history.pushState(null, '', url);
    void activityPage().then(() => document.getElementById(focus)?.focus());
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    reopen(activityUrl(show.value), 'activity-action');
  });
  const last = entries.at(-1);
  const older = entries.length === PAGE_SIZE && last
    ? h('button', { type: 'button', class: 'secondary', id: 'activity-older', onclick: () => reopen(activityUrl(family, last.id), 'activity-count') }, 'Older')
    : null;
  const count = h('p', { id: 'activity-count', role: 'status', tabindex: -1 },
    entries.length === 0
      ? (before ? 'No older entries.' : family ? 'Nothing of this kind yet.' : 'Nothing yet.')
      : `${entries.length} ${entries.length === 1 ? 'entry' : 'entries'}${before ? ', older than the page before' : ''}, newest first.`);
  const rows = entries.map((e) => [
    time(e.at),
    `${ACTIONS[e.action] ?? e.action}${e.by_token ? ' (with an API token)' : ''}`,
    target(e, names),
    e.client ?? '',
    describe(e),
  ]);
  mount(h('h1', {}, 'My activity'), accountNav('activity'),
    h('p', { class: 'hint' }, 'What you did with this account, in the panel or with its API tokens: sign-ins with the address they came from, consoles, power actions, orders, tokens and password changes.'),
    form, count,
    rows.length ? table(['When', 'What', 'Target', 'Client address', 'Details'], rows, 'My activity, newest first') : null,
    h('div', { class: 'actions' }, before ? h('a', { href: activityUrl(family) }, 'Newest') : null, older));
}
