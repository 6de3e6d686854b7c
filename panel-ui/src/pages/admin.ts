// Operator pages: clusters and nodes, plans and templates, customers and quotas, services with
// jobs, plugins, the audit log and live console sessions. Every one is one API listing plus the
// actions on it; customers and services (with a page per object) have modules of their own.
import { api, explain, type Schemas, unwrap } from '../api';
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
  const [status, nodes] = await Promise.all([unwrap(api.GET('/status')), unwrap(api.GET('/nodes'))]);
  const clusters = table(['Cluster', 'Reachable', 'Detail'], status.clusters.map((c) => [c.name, badge(c.reachable ? 'ok' : 'unreachable'), c.error ?? (c.version ? `Proxmox VE ${c.version}` : '')]), 'Clusters');
  const nodeRows = nodes.nodes.map((n) => [n.cluster, n.node, badge(n.status),
    typeof n.cores === 'number' ? String(n.cores) : '', n.memory_bytes ? `${Math.round(((n.memory_used_bytes ?? 0) / n.memory_bytes) * 100)} %` : '']);
  mount(h('h1', {}, 'Clusters and nodes'),
    h('p', {}, `Porthole ${status.version}, up ${Math.round(status.uptime_secs / 60)} min.`),
    clusters,
    table(['Cluster', 'Node', 'Status', 'Cores', 'Memory used'], nodeRows, 'Nodes'),
    nodes.unreachable.length ? notice('error', `Unreachable: ${nodes.unreachable.map((u) => `${u.cluster} (${u.error})`).join(', ')}`) : null,
    nodes.last_known.length ? table(['Cluster', 'Node', 'Last status', 'Last reported', 'Last online'],
      nodes.last_known.map((n) => [n.cluster, n.node, badge(n.status), time(n.last_seen), n.online_at ? time(n.online_at) : 'never']),
      'Nodes of unreachable clusters, as last reported') : null);
}

async function plansPage(): Promise<void> {
  // Operators get the whole catalogue: each plan with its node group and whether it is retired.
  const [plans, templates] = await Promise.all([unwrap(api.GET('/plans')), unwrap(api.GET('/templates'))]);
  const name = h('input', { name: 'name', required: true, pattern: '[a-z0-9][a-z0-9\\-]*' });
  const cores = h('input', { name: 'cores', type: 'number', min: 1, value: 1, required: true });
  const memory = h('input', { name: 'memory_mib', type: 'number', min: 128, value: 1024, required: true });
  const disk = h('input', { name: 'disk_gib', type: 'number', min: 1, value: 10, required: true });
  const nodes = h('input', { name: 'nodes', autocomplete: 'off', placeholder: 'e.g. pve1, pve2', 'aria-describedby': 'nodes-hint' });
  const retired = h('input', { type: 'checkbox', name: 'retired' });
  const boxes = templates.map((t) => h('input', { type: 'checkbox', name: 'templates', value: t.name, checked: true }));
  const status = notice();
  const form = h('form', { class: 'card', 'aria-labelledby': 'new-plan' },
    h('h2', { id: 'new-plan' }, 'Create or update a plan'),
    field('Plan name', name), field('vCPUs', cores), field('Memory (MiB)', memory), field('Disk (GiB)', disk),
    field('Node group', nodes), h('p', { class: 'hint', id: 'nodes-hint' }, 'Nodes a new VM may be placed on, separated by commas; empty: the template\'s node.'),
    h('fieldset', {}, h('legend', {}, 'Templates'), ...(boxes.length ? boxes.map((box) => h('label', { class: 'check' }, box, ` ${box.value}`)) : [h('p', {}, 'No templates yet.')])),
    h('label', { class: 'check' }, retired, ' Retired: offered to no new order; its services keep it'),
    status, h('button', { type: 'submit' }, 'Save plan'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const chosen = boxes.filter((box) => box.checked).map((box) => box.value);
    try {
      await unwrap(api.PUT('/plans/{name}', { params: { path: { name: name.value } }, body: {
        name: name.value, cores: Number(cores.value), memory_mib: Number(memory.value), disk_gib: Number(disk.value), templates: chosen,
        nodes: nodes.value.split(',').map((n) => n.trim()).filter(Boolean), retired: retired.checked,
      } }));
      await plansPage();
      const saved = document.getElementById('plans-status');
      if (saved) say(saved, `Plan ${name.value} saved.`, 'ok');
    } catch (err) {
      say(status, explain(err), 'error');
    }
  });
  mount(h('h1', {}, 'Plans and templates'), h('p', { class: 'notice ok', id: 'plans-status', role: 'status', hidden: true }),
    table(['Plan', 'vCPUs', 'Memory', 'Disk', 'Templates', 'Node group', 'Offered'], plans.map((p) => [p.name, String(p.cores), `${p.memory_mib} MiB`, `${p.disk_gib} GiB`, p.templates.join(', '),
      'nodes' in p ? (p.nodes ?? []).join(', ') : '', 'retired' in p && p.retired ? badge('retired') : 'yes']), 'Plans'),
    table(['Template', 'Cluster', 'Node', 'VM id', 'OS', 'Cloud-init'], templates.map((t) => [t.name, t.cluster, t.node, String(t.vmid), t.os, t.cloud_init]), 'Templates'),
    form);
}

/** A plugin's state, with why it is refused or how often it failed before it tripped. */
function pluginState(state: Schemas['PluginState']): HTMLElement {
  const why = state.state === 'refused' ? ` ${state.reason}` : state.state === 'tripped' ? ` after ${state.consecutive_failures} failures` : '';
  return h('span', {}, badge(state.state), why);
}

async function pluginsPage(): Promise<void> {
  const plugins = await unwrap(api.GET('/plugins'));
  const status = notice();
  const rows = plugins.map((p) => [p.name, p.kind, h('code', { title: p.sha256 }, `${p.sha256.slice(0, 12)}…`),
    [...p.allowed_hosts, ...p.allowed_addresses].join(', ') || 'none',
    pluginState(p.state),
    p.recent_errors.slice(-3).map((e) => `${time(e.at)} ${e.message}`).join('\n'),
    p.state.state === 'tripped' ? h('button', { type: 'button', class: 'small', onclick: async () => {
      try { await unwrap(api.POST('/plugins/{name}/reset', { params: { path: { name: p.name } } })); await pluginsPage(); } catch (err) { say(status, explain(err), 'error'); }
    } }, 'Reset') : '']);
  mount(h('h1', {}, 'Plugins'), status, plugins.length ? table(['Plugin', 'Kind', 'Digest', 'Allowed hosts', 'State', 'Recent errors', 'Action'], rows, 'Plugins') : h('p', {}, 'No plugins are configured.'));
}

async function auditPage(): Promise<void> {
  const params = new URLSearchParams(location.search);
  const action = h('input', { name: 'action', value: params.get('action') ?? '', placeholder: 'e.g. console or console.open', 'aria-describedby': 'action-hint' });
  const limit = h('select', { name: 'limit' }, ...['50', '100', '500'].map((n) => h('option', { value: n, selected: n === (params.get('limit') ?? '100') }, n)));
  const records = await unwrap(api.GET('/audit', { params: { query: { limit: Number(limit.value), action: action.value || undefined } } }));
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

async function consolesPage(): Promise<void> {
  const answer = await unwrap(api.GET('/console/sessions'));
  const status = notice();
  const rows = answer.sessions.map((s) => [s.username ?? `user ${s.user_id}`, h('a', { href: `/admin/services/${s.service_id}` }, s.service_name ?? `service ${s.service_id}`),
    s.kind === 'vnc' ? 'VNC' : 'Terminal', time(s.started_at), bytes(s.bytes_to_vm) || '0 B', bytes(s.bytes_to_browser) || '0 B',
    h('button', { type: 'button', class: 'small danger', 'data-session': String(s.id), 'aria-label': `Close the console of ${s.username ?? 'user'} on ${s.service_name ?? 'this VM'}`, onclick: async () => {
      if (!(await confirmDialog(`Close ${s.username ?? 'this user'}'s console on ${s.service_name ?? 'this VM'}?`, 'Close session'))) return;
      try { await unwrap(api.DELETE('/console/sessions/{id}', { params: { path: { id: s.id } } })); await consolesPage(); } catch (err) { say(status, explain(err), 'error'); }
    } }, 'Close')]);
  const c = answer.counters;
  const reasons = (counts: Record<string, number>) => Object.entries(counts).map(([why, n]) => `${why.replace(/_/g, ' ')}: ${n}`).join('\n') || 'none';
  mount(h('h1', {}, 'Live console sessions'), status,
    answer.sessions.length ? table(['User', 'VM', 'Kind', 'Started', 'Sent to the VM', 'Sent to the browser', 'Action'], rows, 'Live sessions') : h('p', {}, 'No console is open right now.'),
    h('h2', {}, 'Since the daemon started'),
    table(['Open now', 'Opened', 'Refused, by reason', 'Ended, by reason'], [[String(c.live), String(c.opened), reasons(c.refused), reasons(c.closed)]], 'Console counters'),
    h('button', { type: 'button', class: 'secondary', onclick: () => void consolesPage() }, 'Refresh'));
}
