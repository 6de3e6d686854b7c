// Operator pages for accounts: the list (with each customer's quota use) and one customer with
// their quota's limits and usage, the form that sets the limits, and their services.
import { api, explain, type Schemas, unwrap } from '../api';
import { badge, confirmDialog, field, h, mount, notice, say, table, time } from '../dom';

type User = Schemas['User'];
type QuotaView = Schemas['QuotaView'];

/** Each quota resource: its name, unit, usage field, limit field and the limit's label. */
const RESOURCES: [string, string, keyof Schemas['QuotaUsage'], keyof Schemas['Quota'], string][] = [
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
  const users = await unwrap(api.GET('/users'));
  const quotas = await Promise.all(users.map((u) => (u.role === 'customer' ? unwrap(api.GET('/users/{id}/quota', { params: { path: { id: u.id } } })) : null)));
  const status = notice();
  const rows = users.map((u, i) => {
    const quota = quotas[i];
    return [h('a', { href: `/admin/customers/${u.id}` }, u.username), u.role === 'admin' ? 'operator' : u.role,
      badge(u.disabled ? 'disabled' : 'active'), quota ? quotaSummary(quota) : '',
      h('button', { type: 'button', class: 'small secondary', onclick: () => void toggle(u, status) }, `${u.disabled ? 'Enable' : 'Disable'} ${u.username}`)];
  });
  const username = h('input', { name: 'username', required: true, autocomplete: 'off' });
  const password = h('input', { name: 'password', type: 'password', required: true, autocomplete: 'new-password', minlength: 12 });
  const roles: [Schemas['Role'], string][] = [['customer', 'Customer'], ['admin', 'Operator']];
  const role = h('select', { name: 'role' }, ...roles.map(([value, label]) => h('option', { value }, label)));
  const form = h('form', { class: 'card' }, h('h2', {}, 'New account'), field('Username', username), field('Password', password), field('Role', role), h('button', { type: 'submit' }, 'Create'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const chosen = roles.find(([value]) => value === role.value)?.[0] ?? 'customer';
      await unwrap(api.POST('/users', { body: { username: username.value, password: password.value, role: chosen } }));
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
    await unwrap(api.PATCH('/users/{id}', { params: { path: { id: user.id } }, body: { disabled: !user.disabled } }));
    await customersPage();
  } catch (err) {
    say(status, explain(err), 'error');
  }
}

/** `/admin/customers/{id}`: one account, its quota (limits and usage) and its services. */
export async function customerPage(id: number, said?: string): Promise<void> {
  const crumbs = h('p', { class: 'crumbs' }, h('a', { href: '/admin/customers' }, '← Customers'));
  let user: User, quota: QuotaView, services: Schemas['ServiceSummary'][];
  try {
    [user, quota, services] = await Promise.all([
      unwrap(api.GET('/users/{id}', { params: { path: { id } } })),
      unwrap(api.GET('/users/{id}/quota', { params: { path: { id } } })),
      unwrap(api.GET('/services')),
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
    const limit = (name: keyof Schemas['Quota']) => Number(inputs.find(([key]) => key === name)?.[1].value);
    const limits: Schemas['Quota'] = {
      max_vms: limit('max_vms'), max_cores: limit('max_cores'), max_memory_mib: limit('max_memory_mib'), max_disk_gib: limit('max_disk_gib'),
    };
    try {
      const saved = await unwrap(api.PUT('/users/{id}/quota', { params: { path: { id } }, body: limits }));
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
