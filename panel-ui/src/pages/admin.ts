// Operator pages: clusters and nodes, plans and templates, customers and quotas, services with
// jobs, plugins, the audit log and live console sessions. Every one is one API listing plus the
// actions on it; customers and services (with a page per object) have modules of their own.
import { api, explain } from '../api';
import { badge, bytes, confirmDialog, details, field, h, mount, notice, say, table, time } from '../dom';
import { customerPage, customersPage } from './customers';
import { servicePage, servicesPage } from './services';

export const ADMIN_SECTIONS: [string, string][] = [
  ['nodes', 'Clusters'], ['plans', 'Plans'], ['customers', 'Customers'], ['services', 'Services'],
  ['plugins', 'Plugins'], ['audit', 'Audit log'], ['consoles', 'Consoles'],
];

const PAGES: Record<string, () => Promise<void>> = {
  nodes: nodesPage, plans: plansPage, customers: customersPage, services: servicesPage,
  plugins: pluginsPage, audit: auditPage, consoles: consolesPage,
};

/** `/admin/services/{id}` and `/admin/customers/{id}`: one object of a section. */
export async function adminObjectPage(section: string, id: number): Promise<void> {
  mount(h('h1', {}, section === 'services' ? 'Service' : 'Customer'), notice('info', 'Loading…'));
  if (section === 'services') return servicePage(id);
  if (section === 'customers') return customerPage(id);
  mount(h('h1', {}, 'Not found'));
}

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
    api<{
      nodes: { cluster: string; node: string; status: string; cores: number | null; memory_bytes: number | null; memory_used_bytes: number | null; uptime_secs: number | null }[];
      unreachable: { cluster: string; error: string }[];
      last_known: { cluster: string; node: string; status: string; last_seen: number; online_at: number | null }[];
    }>('GET', '/nodes'),
  ]);
  const clusters = table(['Cluster', 'Reachable', 'Detail'], status.clusters.map((c) => [c.name, badge(c.reachable === false ? 'unreachable' : 'ok'), c.error ?? JSON.stringify(omit(c, ['name', 'reachable', 'error']))]), 'Clusters');
  const nodeRows = nodes.nodes.map((n) => [n.cluster, n.node, badge(n.status),
    n.cores !== null ? String(n.cores) : '', n.memory_bytes ? `${Math.round(((n.memory_used_bytes ?? 0) / n.memory_bytes) * 100)} %` : '']);
  mount(h('h1', {}, 'Clusters and nodes'),
    h('p', {}, `Porthole ${status.version}, up ${Math.round(status.uptime_secs / 60)} min.`),
    clusters,
    table(['Cluster', 'Node', 'Status', 'Cores', 'Memory used'], nodeRows, 'Nodes'),
    nodes.unreachable.length ? notice('error', `Unreachable: ${nodes.unreachable.map((u) => `${u.cluster} (${u.error})`).join(', ')}`) : null,
    nodes.last_known.length ? table(['Cluster', 'Node', 'Last status', 'Last reported', 'Last online'],
      nodes.last_known.map((n) => [n.cluster, n.node, badge(n.status), time(n.last_seen), n.online_at ? time(n.online_at) : 'never']),
      'Nodes of unreachable clusters, as last reported') : null);
}

function omit(o: object, keys: string[]): object {
  return Object.fromEntries(Object.entries(o).filter(([k]) => !keys.includes(k)));
}

interface Plan { name: string; cores: number; memory_mib: number; disk_gib: number; templates: string[]; nodes: string[]; retired: boolean }
interface Template { name: string; cluster: string; node: string; vmid: number; os: string; cloud_init: string }

async function plansPage(): Promise<void> {
  const [plans, templates] = await Promise.all([api<Plan[]>('GET', '/plans'), api<Template[]>('GET', '/templates')]);
  const name = h('input', { name: 'name', required: true, pattern: '[a-z0-9][a-z0-9\\-]*' });
  const cores = h('input', { name: 'cores', type: 'number', min: 1, value: 1, required: true });
  const memory = h('input', { name: 'memory_mib', type: 'number', min: 128, value: 1024, required: true });
  const disk = h('input', { name: 'disk_gib', type: 'number', min: 1, value: 10, required: true });
  const nodes = h('input', { name: 'nodes', autocomplete: 'off', placeholder: 'e.g. pve1, pve2', 'aria-describedby': 'nodes-hint' });
  const retired = h('input', { type: 'checkbox', name: 'retired' });
  const boxes = templates.map((t) => h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'templates', value: t.name, checked: true }), ` ${t.name}`));
  const status = notice();
  const form = h('form', { class: 'card', 'aria-labelledby': 'new-plan' },
    h('h2', { id: 'new-plan' }, 'Create or update a plan'),
    field('Plan name', name), field('vCPUs', cores), field('Memory (MiB)', memory), field('Disk (GiB)', disk),
    field('Node group', nodes), h('p', { class: 'hint', id: 'nodes-hint' }, 'Nodes a new VM may be placed on, separated by commas; empty: the template\'s node.'),
    h('fieldset', {}, h('legend', {}, 'Templates'), ...(boxes.length ? boxes : [h('p', {}, 'No templates yet.')])),
    h('label', { class: 'check' }, retired, ' Retired: offered to no new order; its services keep it'),
    status, h('button', { type: 'submit' }, 'Save plan'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const chosen = boxes.map((b) => b.querySelector('input') as HTMLInputElement).filter((i) => i.checked).map((i) => i.value);
    try {
      await api('PUT', `/plans/${encodeURIComponent(name.value)}`, {
        name: name.value, cores: Number(cores.value), memory_mib: Number(memory.value), disk_gib: Number(disk.value), templates: chosen,
        nodes: nodes.value.split(',').map((n) => n.trim()).filter(Boolean), retired: retired.checked,
      });
      await plansPage();
      say(document.querySelector('#plans-status') as HTMLElement, `Plan ${name.value} saved.`, 'ok');
    } catch (err) {
      say(status, explain(err), 'error');
    }
  });
  mount(h('h1', {}, 'Plans and templates'), h('p', { class: 'notice ok', id: 'plans-status', role: 'status', hidden: true }),
    table(['Plan', 'vCPUs', 'Memory', 'Disk', 'Templates', 'Node group', 'Offered'], plans.map((p) => [p.name, String(p.cores), `${p.memory_mib} MiB`, `${p.disk_gib} GiB`, p.templates.join(', '), p.nodes.join(', '), p.retired ? badge('retired') : 'yes']), 'Plans'),
    table(['Template', 'Cluster', 'Node', 'VM id', 'OS', 'Cloud-init'], templates.map((t) => [t.name, t.cluster, t.node, String(t.vmid), t.os, t.cloud_init]), 'Templates'),
    form);
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
  mount(h('h1', {}, 'Plugins'), status, plugins.length ? table(['Plugin', 'Kind', 'Digest', 'Allowed hosts', 'State', 'Recent errors', 'Action'], rows, 'Plugins') : h('p', {}, 'No plugins are configured.'));
}

interface AuditRecord { id: number; at: number; actor: string; actor_name: string | null; action: string; target: string | null; detail: unknown; client: string | null }

async function auditPage(): Promise<void> {
  const params = new URLSearchParams(location.search);
  const action = h('input', { name: 'action', value: params.get('action') ?? '', placeholder: 'e.g. console or console.open', 'aria-describedby': 'action-hint' });
  const limit = h('select', { name: 'limit' }, ...['50', '100', '500'].map((n) => h('option', { value: n, selected: n === (params.get('limit') ?? '100') }, n)));
  const q = new URLSearchParams({ limit: limit.value });
  if (action.value) q.set('action', action.value);
  const records = await api<AuditRecord[]>('GET', `/audit?${q}`);
  const form = h('form', { class: 'inline card', role: 'search' }, field('Action', action), field('Entries', limit), h('button', { type: 'submit' }, 'Filter'),
    h('p', { class: 'hint', id: 'action-hint' }, 'An action (console.open) or a family of them (console).'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const next = new URLSearchParams({ limit: limit.value });
    if (action.value) next.set('action', action.value);
    history.pushState(null, '', `/admin/audit?${next}`);
    void adminPage('audit');
  });
  mount(h('h1', {}, 'Audit log'), form,
    records.length ? table(['When', 'Actor', 'Action', 'Target', 'Client', 'Detail'],
      records.map((r) => [time(r.at), r.actor_name ? h('span', { title: r.actor }, r.actor_name) : r.actor, r.action, r.target ?? '', r.client ?? '', details(r.detail)]), 'Audit entries')
      : h('p', {}, 'No entries match.'));
}

interface LiveSession { id: number; user_id: number; username: string | null; service_id: number; service_name: string | null; kind: string; started_at: number; bytes_to_vm: number; bytes_to_browser: number }
interface ConsoleCounters { live: number; opened: number; refused: Record<string, number>; closed: Record<string, number> }

async function consolesPage(): Promise<void> {
  const answer = await api<{ sessions: LiveSession[]; counters: ConsoleCounters }>('GET', '/console/sessions');
  const status = notice();
  const rows = answer.sessions.map((s) => [s.username ?? `user ${s.user_id}`, h('a', { href: `/admin/services/${s.service_id}` }, s.service_name ?? `service ${s.service_id}`),
    s.kind === 'vnc' ? 'VNC' : 'Terminal', time(s.started_at), bytes(s.bytes_to_vm) || '0 B', bytes(s.bytes_to_browser) || '0 B',
    h('button', { type: 'button', class: 'small danger', 'data-session': String(s.id), 'aria-label': `Close the console of ${s.username ?? 'user'} on ${s.service_name ?? 'this VM'}`, onclick: async () => {
      if (!(await confirmDialog(`Close ${s.username ?? 'this user'}'s console on ${s.service_name ?? 'this VM'}?`, 'Close session'))) return;
      try { await api('DELETE', `/console/sessions/${s.id}`); await consolesPage(); } catch (err) { say(status, explain(err), 'error'); }
    } }, 'Close')]);
  const c = answer.counters;
  const reasons = (counts: Record<string, number>) => Object.entries(counts).map(([why, n]) => `${why.replace(/_/g, ' ')}: ${n}`).join('\n') || 'none';
  mount(h('h1', {}, 'Live console sessions'), status,
    answer.sessions.length ? table(['User', 'VM', 'Kind', 'Started', 'Sent to the VM', 'Sent to the browser', 'Action'], rows, 'Live sessions') : h('p', {}, 'No console is open right now.'),
    h('h2', {}, 'Since the daemon started'),
    table(['Open now', 'Opened', 'Refused, by reason', 'Ended, by reason'], [[String(c.live), String(c.opened), reasons(c.refused), reasons(c.closed)]], 'Console counters'),
    h('button', { type: 'button', class: 'secondary', onclick: () => void consolesPage() }, 'Refresh'));
}
