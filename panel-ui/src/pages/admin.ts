// Operator pages: clusters and nodes, plans and templates, customers and quotas, services with
// jobs, plugins, the audit log and live console sessions. Every one is one API listing plus the
// actions on it.
import { api, explain } from '../api';
import { badge, confirmDialog, field, h, mount, notice, say, table, time } from '../dom';

export const ADMIN_SECTIONS: [string, string][] = [
  ['nodes', 'Clusters'], ['plans', 'Plans'], ['customers', 'Customers'], ['services', 'Services'],
  ['plugins', 'Plugins'], ['audit', 'Audit log'], ['consoles', 'Consoles'],
];

const PAGES: Record<string, () => Promise<void>> = {
  nodes: nodesPage, plans: plansPage, customers: customersPage, services: servicesPage,
  plugins: pluginsPage, audit: auditPage, consoles: consolesPage,
};

export async function adminPage(section: string): Promise<void> {
  const page = PAGES[section];
  const title = ADMIN_SECTIONS.find(([s]) => s === section)?.[1] ?? 'Not found';
  if (!page) {
    mount(h('h1', {}, 'Not found'));
    return;
  }
  mount(h('h1', {}, title), notice('info', 'Loading…'));
  try {
    await page();
  } catch (err) {
    mount(h('h1', {}, title), notice('error', explain(err)));
  }
}

async function nodesPage(): Promise<void> {
  const [status, nodes] = await Promise.all([
    api<{ version: string; uptime_secs: number; clusters: { name: string; reachable?: boolean; error?: string | null }[] }>('GET', '/status'),
    api<{ nodes: { cluster: string; node: string; status: string; cores: number | null; memory_bytes: number | null; memory_used_bytes: number | null; uptime_secs: number | null }[]; unreachable: { cluster: string; error: string }[] }>('GET', '/nodes'),
  ]);
  const clusters = table(['Cluster', 'Reachable', 'Detail'], status.clusters.map((c) => [c.name, badge(c.reachable === false ? 'unreachable' : 'ok'), c.error ?? JSON.stringify(omit(c, ['name', 'reachable', 'error']))]), 'Clusters');
  const nodeRows = nodes.nodes.map((n) => [n.cluster, n.node, badge(n.status),
    n.cores !== null ? String(n.cores) : '', n.memory_bytes ? `${Math.round(((n.memory_used_bytes ?? 0) / n.memory_bytes) * 100)} %` : '']);
  mount(h('h1', {}, 'Clusters and nodes'),
    h('p', {}, `Porthole ${status.version}, up ${Math.round(status.uptime_secs / 60)} min.`),
    clusters,
    table(['Cluster', 'Node', 'Status', 'Cores', 'Memory used'], nodeRows, 'Nodes'),
    nodes.unreachable.length ? notice('error', `Unreachable: ${nodes.unreachable.map((u) => `${u.cluster} (${u.error})`).join(', ')}`) : null);
}

function omit(o: object, keys: string[]): object {
  return Object.fromEntries(Object.entries(o).filter(([k]) => !keys.includes(k)));
}

interface Plan { name: string; cores: number; memory_mib: number; disk_gib: number; templates: string[]; nodes: string[] }
interface Template { name: string; cluster: string; node: string; vmid: number; os: string; cloud_init: string }

async function plansPage(): Promise<void> {
  const [plans, templates] = await Promise.all([api<Plan[]>('GET', '/plans'), api<Template[]>('GET', '/templates')]);
  const name = h('input', { name: 'name', required: true, pattern: '[a-z0-9][a-z0-9-]*' });
  const cores = h('input', { name: 'cores', type: 'number', min: 1, value: 1, required: true });
  const memory = h('input', { name: 'memory_mib', type: 'number', min: 128, value: 1024, required: true });
  const disk = h('input', { name: 'disk_gib', type: 'number', min: 1, value: 10, required: true });
  const boxes = templates.map((t) => h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'templates', value: t.name, checked: true }), ` ${t.name}`));
  const status = notice();
  const form = h('form', { class: 'card', 'aria-labelledby': 'new-plan' },
    h('h2', { id: 'new-plan' }, 'Create or update a plan'),
    field('Plan name', name), field('vCPUs', cores), field('Memory (MiB)', memory), field('Disk (GiB)', disk),
    h('fieldset', {}, h('legend', {}, 'Templates'), ...(boxes.length ? boxes : [h('p', {}, 'No templates yet.')])),
    status, h('button', { type: 'submit' }, 'Save plan'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const chosen = boxes.map((b) => b.querySelector('input') as HTMLInputElement).filter((i) => i.checked).map((i) => i.value);
    try {
      await api('PUT', `/plans/${encodeURIComponent(name.value)}`, {
        name: name.value, cores: Number(cores.value), memory_mib: Number(memory.value), disk_gib: Number(disk.value), templates: chosen, nodes: [],
      });
      await plansPage();
      say(document.querySelector('#plans-status') as HTMLElement, `Plan ${name.value} saved.`, 'ok');
    } catch (err) {
      say(status, explain(err), 'error');
    }
  });
  mount(h('h1', {}, 'Plans and templates'), h('p', { class: 'notice ok', id: 'plans-status', role: 'status', hidden: true }),
    table(['Plan', 'vCPUs', 'Memory', 'Disk', 'Templates'], plans.map((p) => [p.name, String(p.cores), `${p.memory_mib} MiB`, `${p.disk_gib} GiB`, p.templates.join(', ')]), 'Plans'),
    table(['Template', 'Cluster', 'Node', 'VM id', 'OS', 'Cloud-init'], templates.map((t) => [t.name, t.cluster, t.node, String(t.vmid), t.os, t.cloud_init]), 'Templates'),
    form);
}

interface User { id: number; username: string; role: string; disabled: boolean; created_at?: number }
interface Quota { max_vms: number; max_cores: number; max_memory_mib: number; max_disk_gib: number }

async function customersPage(): Promise<void> {
  const users = await api<User[]>('GET', '/users');
  const status = notice();
  const rows = users.map((u) => [u.username, u.role, u.disabled ? badge('disabled') : badge('active'),
    u.role === 'customer' ? quotaForm(u, status) : '',
    h('button', { type: 'button', class: 'small secondary', onclick: () => void toggle(u) }, u.disabled ? 'Enable' : 'Disable')]);
  const username = h('input', { name: 'username', required: true, autocomplete: 'off' });
  const password = h('input', { name: 'password', type: 'password', required: true, autocomplete: 'new-password', minlength: 12 });
  const role = h('select', { name: 'role' }, h('option', { value: 'customer' }, 'Customer'), h('option', { value: 'admin' }, 'Operator'));
  const form = h('form', { class: 'card' }, h('h2', {}, 'New account'), field('Username', username), field('Password', password), field('Role', role), h('button', { type: 'submit' }, 'Create'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await api('POST', '/users', { username: username.value, password: password.value, role: role.value });
      await customersPage();
    } catch (err) {
      say(status, explain(err), 'error');
    }
  });
  mount(h('h1', {}, 'Customers and quotas'), status, table(['User', 'Role', 'State', 'Quota (VMs / vCPUs / MiB / GiB)', ''], rows), form);
}

function quotaForm(user: User, status: HTMLElement): HTMLElement {
  const input = (name: string, label: string, value: number) => h('input', { name, type: 'number', min: 0, value, 'aria-label': `${label} for ${user.username}`, class: 'tiny' });
  const q = [input('max_vms', 'Max VMs', 5), input('max_cores', 'Max vCPUs', 16), input('max_memory_mib', 'Max memory MiB', 32768), input('max_disk_gib', 'Max disk GiB', 500)];
  const form = h('form', { class: 'inline' }, ...q, h('button', { type: 'submit', class: 'small' }, 'Set'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body: Record<string, number> = {};
    for (const i of q) body[i.name] = Number(i.value);
    try {
      await api('PUT', `/users/${user.id}/quota`, body as unknown as Quota);
      say(status, `Quota of ${user.username} saved.`, 'ok');
    } catch (err) {
      say(status, explain(err), 'error');
    }
  });
  return form;
}

async function toggle(user: User): Promise<void> {
  if (!user.disabled && !(await confirmDialog(`Disable ${user.username}? They are signed out everywhere.`, 'Disable'))) return;
  await api('PATCH', `/users/${user.id}`, { disabled: !user.disabled });
  await customersPage();
}

interface ServiceRow { id: number; name: string; state: string; plan: string | null; owner_id: number; cluster: string; node: string | null; vmid: number | null }
interface Job { id: number; kind: string; state: string; step: string | null; attempts: number; last_error: string | null; updated_at: number }

async function servicesPage(): Promise<void> {
  const answer = await api<{ vms: { service: ServiceRow | null; status?: string }[] }>('GET', '/vms');
  const services = answer.vms.map((v) => v.service).filter((s): s is ServiceRow => !!s);
  const detail = h('section', { id: 'service-detail', 'aria-live': 'polite' });
  const rows = services.map((s) => [String(s.id), h('a', { href: `/vms/${s.id}` }, s.name), badge(s.state), s.plan ?? '', `${s.cluster}/${s.node ?? '?'}/${s.vmid ?? '?'}`,
    h('button', { type: 'button', class: 'small secondary', onclick: () => void showJobs(s, detail) }, 'Jobs'),
    serviceActions(s)]);
  mount(h('h1', {}, 'Services'), table(['Id', 'Name', 'State', 'Plan', 'Where', 'History', 'Actions'], rows), detail);
}

function serviceActions(s: ServiceRow): HTMLElement {
  const act = async (action: string) => {
    if (!(await confirmDialog(`${action[0].toUpperCase()}${action.slice(1)} ${s.name}?`, action))) return;
    try {
      await api('POST', `/services/${s.id}/${action}`);
      await servicesPage();
    } catch (err) {
      alertIn(err);
    }
  };
  const buttons = s.state === 'suspended' ? ['unsuspend', 'terminate'] : s.state === 'active' ? ['suspend', 'terminate'] : [];
  return h('div', { class: 'actions' }, ...buttons.map((a) => h('button', { type: 'button', class: a === 'terminate' ? 'small danger' : 'small secondary', 'data-action': a, onclick: () => void act(a) }, a)));
}

function alertIn(err: unknown): void {
  const main = document.getElementById('main') as HTMLElement;
  main.prepend(notice('error', explain(err)));
}

async function showJobs(s: ServiceRow, into: HTMLElement): Promise<void> {
  const view = await api<{ jobs: Job[]; history: { job_id: number; step: string; status: string; message: string | null; at: number }[] }>('GET', `/services/${s.id}`);
  const act = (j: Job, action: 'retry' | 'cancel', label: string) =>
    h('button', { type: 'button', class: 'small', onclick: async () => {
      if (action === 'cancel' && !(await confirmDialog(`Cancel job ${j.id}? A provision rolls back what it created.`, 'Cancel job'))) return;
      try { await api('POST', `/jobs/${j.id}/${action}`); await showJobs(s, into); } catch (err) { alertIn(err); }
    } }, label);
  const unfinished = (j: Job) => j.state === 'pending' || j.state === 'parked';
  const retry = (j: Job) => h('span', {},
    j.state === 'parked' ? act(j, 'retry', 'Retry') : '',
    unfinished(j) ? act(j, 'cancel', 'Cancel') : '');
  into.replaceChildren(h('h2', {}, `Jobs of ${s.name}`),
    table(['Job', 'Kind', 'State', 'Step', 'Attempts', 'Last error', 'Updated', ''], view.jobs.map((j) => [String(j.id), j.kind, badge(j.state), j.step ?? '', String(j.attempts), j.last_error ?? '', time(j.updated_at), retry(j)])),
    table(['At', 'Job', 'Step', 'Status', 'Message'], (view.history ?? []).slice(-50).reverse().map((e) => [time(e.at), String(e.job_id), e.step, e.status, e.message ?? '']), 'History'));
  (into.querySelector('h2') as HTMLElement).scrollIntoView();
}

interface Plugin { name: string; kind: string; sha256: string; allowed_hosts: string[]; allowed_addresses: string[]; state: { state: string; reason?: string; consecutive_failures?: number }; recent_errors: { at: number; message?: string; error?: string }[] }

async function pluginsPage(): Promise<void> {
  const plugins = await api<Plugin[]>('GET', '/plugins');
  const status = notice();
  const rows = plugins.map((p) => [p.name, p.kind, h('code', { title: p.sha256 }, `${p.sha256.slice(0, 12)}…`),
    [...p.allowed_hosts, ...p.allowed_addresses].join(', ') || 'none',
    h('span', {}, badge(p.state.state), p.state.reason ? ` ${p.state.reason}` : '', p.state.consecutive_failures ? ` after ${p.state.consecutive_failures} failures` : ''),
    p.recent_errors.slice(-3).map((e) => `${time(e.at)} ${e.message ?? e.error ?? ''}`).join('\n'),
    p.state.state === 'tripped' ? h('button', { type: 'button', class: 'small', onclick: async () => {
      try { await api('POST', `/plugins/${encodeURIComponent(p.name)}/reset`); await pluginsPage(); } catch (err) { say(status, explain(err), 'error'); }
    } }, 'Reset') : '']);
  mount(h('h1', {}, 'Plugins'), status, plugins.length ? table(['Plugin', 'Kind', 'Digest', 'Allowed hosts', 'State', 'Recent errors', ''], rows) : h('p', {}, 'No plugins are configured.'));
}

interface AuditRecord { id: number; at: number; actor: string; action: string; target: string | null; detail: unknown; client: string | null }

async function auditPage(): Promise<void> {
  const params = new URLSearchParams(location.search);
  const action = h('input', { name: 'action', value: params.get('action') ?? '', placeholder: 'e.g. console.opened' });
  const limit = h('select', { name: 'limit' }, ...['50', '100', '500'].map((n) => h('option', { value: n, selected: n === (params.get('limit') ?? '100') }, n)));
  const q = new URLSearchParams({ limit: limit.value });
  if (action.value) q.set('action', action.value);
  const records = await api<AuditRecord[]>('GET', `/audit?${q}`);
  const form = h('form', { class: 'inline card', role: 'search' }, field('Action', action), field('Entries', limit), h('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const next = new URLSearchParams({ limit: limit.value });
    if (action.value) next.set('action', action.value);
    history.pushState(null, '', `/admin/audit?${next}`);
    void adminPage('audit');
  });
  mount(h('h1', {}, 'Audit log'), form,
    table(['When', 'Actor', 'Action', 'Target', 'Client', 'Detail'], records.map((r) => [time(r.at), r.actor, r.action, r.target ?? '', r.client ?? '', h('code', {}, JSON.stringify(r.detail))])));
}

interface LiveSession { id: number | null; user_id: number; service_id: number; kind: string; started_at: number; bytes_to_vm: number; bytes_to_browser: number }

async function consolesPage(): Promise<void> {
  const answer = await api<{ sessions: LiveSession[]; counters: Record<string, unknown> }>('GET', '/console/sessions');
  const status = notice();
  const rows = answer.sessions.map((s) => [String(s.id ?? ''), String(s.user_id), h('a', { href: `/vms/${s.service_id}` }, String(s.service_id)), s.kind, time(s.started_at),
    `${s.bytes_to_vm} B in / ${s.bytes_to_browser} B out`,
    s.id === null ? '' : h('button', { type: 'button', class: 'small danger', 'data-session': String(s.id), onclick: async () => {
      if (!(await confirmDialog(`Close console session ${s.id}?`, 'Close session'))) return;
      try { await api('DELETE', `/console/sessions/${s.id}`); await consolesPage(); } catch (err) { say(status, explain(err), 'error'); }
    } }, 'Close')]);
  mount(h('h1', {}, 'Live console sessions'), status,
    answer.sessions.length ? table(['Session', 'User', 'Service', 'Kind', 'Started', 'Traffic', ''], rows) : h('p', {}, 'No console is open right now.'),
    h('h2', {}, 'Counters'), h('pre', {}, JSON.stringify(answer.counters, null, 2)),
    h('button', { type: 'button', class: 'secondary', onclick: () => void consolesPage() }, 'Refresh'));
}
