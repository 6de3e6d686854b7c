// Operator pages for services: the list (filtered by state) and one service with its jobs, their
// history, and the operations on both (suspend, unsuspend, terminate; retry and cancel a job).
import { api, explain, type Schemas, unwrap } from '../api';
import { badge, confirmDialog, field, h, mount, notice, table, time } from '../dom';

type ServiceState = Schemas['ServiceState'];

/** Every state a service can be in, in the order of its life. */
const SERVICE_STATES: ServiceState[] = ['pending', 'provisioning', 'active', 'suspended', 'terminating', 'terminated', 'failed'];

/**
 * The operations a service offers (by the kind of job each becomes) that take nothing more than a
 * confirmation, and the path of each. Changing the plan needs a plan; billing systems do it.
 */
const OPERATIONS: Partial<Record<Schemas['JobKind'], Schemas['ServiceAction']>> = {
  suspend: 'suspend', unsuspend: 'unsuspend', terminate: 'terminate',
};

/** Where a service's VM is: only operators see this. */
function where(s: Schemas['Service']): string {
  return `${s.cluster} / ${s.node ?? '–'} / ${s.vmid ?? '–'}`;
}

function lastJob(job: Schemas['JobSummary'] | null | undefined): Node | string {
  if (!job) return '';
  return h('span', {}, `${job.kind.replace(/_/g, ' ')} `, badge(job.state));
}

/** `/admin/services[?state=…]`: every service, newest first. */
export async function servicesPage(): Promise<void> {
  const asked = new URLSearchParams(location.search).get('state') ?? '';
  const wanted = SERVICE_STATES.find((s) => s === asked);
  const services = await unwrap(api.GET('/services', { params: { query: { state: wanted } } }));
  const state = h('select', { name: 'state', id: 'service-state' },
    h('option', { value: '', selected: wanted === undefined }, 'Any state'),
    ...SERVICE_STATES.map((s) => h('option', { value: s, selected: s === wanted }, s)));
  const form = h('form', { class: 'inline card', role: 'search', 'aria-label': 'Filter services' }, field('State', state), h('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const next = state.value ? `?${new URLSearchParams({ state: state.value })}` : '';
    history.pushState(null, '', `/admin/services${next}`);
    void servicesPage().then(() => document.getElementById('service-state')?.focus());
  });
  const rows = services.map((s) => [
    h('a', { href: `/admin/services/${s.id}` }, s.name), s.owner.username ?? `#${s.owner.id}`, s.plan ?? '',
    badge(s.state), s.hostname ?? '', lastJob(s.last_job), where(s)]);
  const count = `${services.length} ${services.length === 1 ? 'service' : 'services'}${wanted ? ` ${wanted}` : ''}.`;
  mount(h('h1', {}, 'Services'), form, h('p', { id: 'services-count', role: 'status' }, count),
    rows.length ? table(['Service', 'Owner', 'Plan', 'State', 'Hostname', 'Last job', 'Cluster / node / VM id'], rows, 'Services') : null);
}

/** `/admin/services/{id}`: one service, its jobs and their history, with the operations. */
export async function servicePage(id: number, said?: [string, 'ok' | 'error']): Promise<void> {
  const crumbs = h('p', { class: 'crumbs' }, h('a', { href: '/admin/services' }, '← Services'));
  let view: Schemas['ServiceDetail'];
  try {
    view = await unwrap(api.GET('/services/{id}', { params: { path: { id } } }));
  } catch (err) {
    mount(crumbs, h('h1', {}, 'Service'), notice('error', explain(err)));
    return;
  }
  // Operators get the service's history and operations; its owner's view has neither.
  if (!('history' in view)) {
    mount(crumbs, h('h1', {}, view.service.name), notice('error', 'This page is for operators only.'));
    return;
  }
  const s = view.service;
  const owner = await unwrap(api.GET('/users/{id}', { params: { path: { id: s.owner_id } } })).then((u) => u.username, () => `#${s.owner_id}`);
  const status = notice(said?.[1] ?? 'info', said?.[0] ?? '');
  status.id = 'service-status';
  // Keyboard users land on the outcome: the button they pressed is gone after the reload.
  status.tabIndex = -1;
  const reload = (text: string, kind: 'ok' | 'error' = 'ok') => servicePage(id, [text, kind]);
  const attempt = async (question: string, confirmLabel: string, request: () => Promise<unknown>, done: string) => {
    if (!(await confirmDialog(question, confirmLabel))) return;
    try {
      await request();
      await reload(done);
    } catch (err) {
      await reload(explain(err), 'error');
    }
  };
  // The daemon says which operations the service's state takes.
  const operations = s.operations.flatMap((kind) => {
    const action = OPERATIONS[kind];
    return action ? [action] : [];
  });
  const operationButtons = operations.map((op) => {
    const label = op.charAt(0).toUpperCase() + op.slice(1);
    const question = op === 'terminate' ? `Terminate ${s.name}? Its VM is destroyed with its disks.` : `${label} ${s.name}?`;
    return h('button', { type: 'button', class: op === 'terminate' ? 'danger' : 'secondary', 'data-action': op,
      onclick: () => void attempt(question, label, () => unwrap(api.POST('/services/{id}/{action}', { params: { path: { id, action: op } } })), `${label} requested.`) }, label);
  });
  const jobButtons = (j: Schemas['JobView']) => h('div', { class: 'actions' },
    j.state === 'parked' ? h('button', { type: 'button', class: 'small',
      onclick: () => void attempt(`Retry job ${j.id} (${j.kind})?`, 'Retry', () => unwrap(api.POST('/jobs/{id}/retry', { params: { path: { id: j.id } } })), `Job ${j.id} queued again.`) }, `Retry job ${j.id}`) : '',
    j.state === 'pending' || j.state === 'parked' ? h('button', { type: 'button', class: 'small danger',
      onclick: () => void attempt(`Cancel job ${j.id}? A provision rolls back what it created.`, 'Cancel job', () => unwrap(api.POST('/jobs/{id}/cancel', { params: { path: { id: j.id } } })), `Job ${j.id} cancelled.`) }, `Cancel job ${j.id}`) : '');
  const jobs = [...view.jobs].reverse().map((j) => [String(j.id), j.kind.replace(/_/g, ' '), badge(j.state), j.step, String(j.attempts), j.last_error ?? '', time(j.updated_at), jobButtons(j)]);
  const historyRows = view.history.slice(-100).reverse().map((e) => [time(e.at), String(e.job_id), e.step.replace(/_/g, ' '), e.status, e.message ?? '']);
  mount(crumbs, h('h1', {}, s.name),
    h('dl', { class: 'facts' },
      h('dt', {}, 'State'), h('dd', { id: 'service-state-now' }, badge(s.state)),
      h('dt', {}, 'Owner'), h('dd', {}, h('a', { href: `/admin/customers/${s.owner_id}` }, owner)),
      h('dt', {}, 'Plan'), h('dd', {}, s.plan ?? ''),
      h('dt', {}, 'Hostname'), h('dd', {}, s.hostname ?? ''),
      h('dt', {}, 'Cluster / node / VM id'), h('dd', {}, where(s)),
      h('dt', {}, 'Billing reference'), h('dd', {}, s.external_ref ?? ''),
      h('dt', {}, 'Created'), h('dd', {}, time(s.created_at)),
    ),
    h('p', {}, h('a', { href: `/vms/${id}` }, 'VM page (power and console)')),
    status,
    h('section', { 'aria-labelledby': 'operations-h' }, h('h2', { id: 'operations-h' }, 'Operations'),
      h('div', { class: 'actions' }, ...operationButtons,
        h('button', { type: 'button', class: 'secondary', onclick: () => void servicePage(id) }, 'Refresh')),
      operations.length ? null : h('p', { class: 'hint' }, `No operation applies to a service that is ${s.state}.`)),
    h('section', { 'aria-labelledby': 'jobs-h' }, h('h2', { id: 'jobs-h' }, 'Jobs'),
      jobs.length ? table(['Job', 'Kind', 'State', 'Step', 'Attempts', 'Last error', 'Updated', 'Action'], jobs, 'Jobs, newest first') : h('p', {}, 'No jobs yet.')),
    h('section', { 'aria-labelledby': 'history-h' }, h('h2', { id: 'history-h' }, 'History'),
      historyRows.length ? table(['At', 'Job', 'Step', 'Status', 'Message'], historyRows, 'Steps, newest first') : h('p', {}, 'Nothing has happened to this service yet.')),
  );
  if (said) status.focus();
}
