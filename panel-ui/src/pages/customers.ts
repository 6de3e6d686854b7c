// Operator pages for accounts: the list (with each customer's quota use) and one customer with
// their quota's limits and usage, the form that sets the limits, and their services.
import { api, explain } from '../api';
import { badge, confirmDialog, field, h, mount, notice, say, table, time } from '../dom';

interface User { id: number; username: string; role: string; disabled: boolean; created_at?: number }
interface Limits { max_vms: number; max_cores: number; max_memory_mib: number; max_disk_gib: number }
interface Usage { vms: number; cores: number; memory_mib: number; disk_gib: number }
interface OverLimit { limit: string; in_use: number; allowed: number }
interface QuotaView { user_id: number; limits: Limits; custom: boolean; usage: Usage }
interface OwnedService { id: number; name: string; state: string; plan: string | null; owner: { id: number } }

/** Each quota resource: its name, unit, usage field, limit field and the limit's label. */
const RESOURCES: [string, string, keyof Usage, keyof Limits, string][] = [
  ['VMs', '', 'vms', 'max_vms', 'Max VMs'],
  ['vCPUs', '', 'cores', 'max_cores', 'Max vCPUs'],
  ['Memory', ' MiB', 'memory_mib', 'max_memory_mib', 'Max memory (MiB)'],
  ['Disk', ' GiB', 'disk_gib', 'max_disk_gib', 'Max disk (GiB)'],
];

function quotaSummary(q: QuotaView): string {
  return RESOURCES.map(([label, unit, used, limit]) => `${label}: ${q.usage[used]} of ${q.limits[limit]}${unit}`).join('\n');
}

/** `/admin/customers`: every account; customers with their quota use. */
export async function customersPage(): Promise<void> {
  const users = await api<User[]>('GET', '/users');
  const quotas = await Promise.all(users.map((u) => (u.role === 'customer' ? api<QuotaView>('GET', `/users/${u.id}/quota`) : null)));
  const status = notice();
  const rows = users.map((u, i) => {
    const quota = quotas[i];
    return [h('a', { href: `/admin/customers/${u.id}` }, u.username), u.role === 'admin' ? 'operator' : u.role,
      badge(u.disabled ? 'disabled' : 'active'), quota ? quotaSummary(quota) : '',
      h('button', { type: 'button', class: 'small secondary', onclick: () => void toggle(u, status) }, `${u.disabled ? 'Enable' : 'Disable'} ${u.username}`)];
  });
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
  mount(h('h1', {}, 'Customers and quotas'), status, table(['Account', 'Role', 'State', 'Quota used', 'Action'], rows, 'Accounts'), form);
}

async function toggle(user: User, status: HTMLElement): Promise<void> {
  if (!user.disabled && !(await confirmDialog(`Disable ${user.username}? They are signed out everywhere.`, 'Disable'))) return;
  try {
    await api('PATCH', `/users/${user.id}`, { disabled: !user.disabled });
    await customersPage();
  } catch (err) {
    say(status, explain(err), 'error');
  }
}

/** `/admin/customers/{id}`: one account, its quota (limits and usage) and its services. */
export async function customerPage(id: number, said?: string): Promise<void> {
  const crumbs = h('p', { class: 'crumbs' }, h('a', { href: '/admin/customers' }, '← Customers'));
  let user: User, quota: QuotaView, services: OwnedService[];
  try {
    [user, quota, services] = await Promise.all([
      api<User>('GET', `/users/${id}`),
      api<QuotaView>('GET', `/users/${id}/quota`),
      api<OwnedService[]>('GET', '/services'),
    ]);
  } catch (err) {
    mount(crumbs, h('h1', {}, 'Customer'), notice('error', explain(err)));
    return;
  }
  const owned = services.filter((s) => s.owner.id === id);
  const status = notice(said ? 'ok' : 'info', said ?? '');
  status.id = 'quota-status';
  status.tabIndex = -1;
  const inputs = RESOURCES.map(([, , , limit, label]) =>
    [limit, h('input', { name: limit, type: 'number', min: 0, step: 1, required: true, value: quota.limits[limit], class: 'tiny' }), label] as const);
  const form = h('form', { class: 'inline card', 'aria-labelledby': 'limits-h' },
    h('h3', { id: 'limits-h', class: 'form-title' }, 'Set the limits'),
    ...inputs.map(([, input, label]) => field(label, input)),
    h('button', { type: 'submit' }, 'Save quota'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const limits = Object.fromEntries(inputs.map(([name, input]) => [name, Number(input.value)])) as unknown as Limits;
    try {
      const saved = await api<{ over: OverLimit[] }>('PUT', `/users/${id}/quota`, limits);
      const over = saved.over.map((o) => `${o.limit}: ${o.in_use} in use, ${o.allowed} allowed`).join('; ');
      await customerPage(id, over
        ? `Quota of ${user.username} saved, below what is in use (${over}). Nothing is taken away; new orders are refused until the use is within the limits.`
        : `Quota of ${user.username} saved.`);
      document.getElementById('quota-status')?.focus();
    } catch (err) {
      say(status, explain(err), 'error');
      status.focus();
    }
  });
  const usageRows = RESOURCES.map(([label, unit, used, limit]) => [label, `${quota.usage[used]}${unit}`, `${quota.limits[limit]}${unit}`]);
  mount(crumbs, h('h1', {}, user.username),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Role'), h('dd', {}, user.role === 'admin' ? 'operator' : user.role),
      h('dt', {}, 'State'), h('dd', {}, badge(user.disabled ? 'disabled' : 'active')),
      h('dt', {}, 'Since'), h('dd', {}, time(user.created_at)),
    ),
    h('section', { 'aria-labelledby': 'quota-h' }, h('h2', { id: 'quota-h' }, 'Quota'),
      h('p', { class: 'hint' }, `${quota.custom ? 'Limits set by an operator.' : 'The default limits.'} Usage counts every service not terminated or failed, sized by its plan.`),
      table(['Resource', 'In use', 'Limit'], usageRows, 'Quota: usage and limits'),
      status, form),
    h('section', { 'aria-labelledby': 'owned-h' }, h('h2', { id: 'owned-h' }, 'Services'),
      owned.length ? table(['Service', 'State', 'Plan'], owned.map((s) => [h('a', { href: `/admin/services/${s.id}` }, s.name), badge(s.state), s.plan ?? '']), `Services of ${user.username}`) : h('p', {}, 'No services.')),
  );
}
