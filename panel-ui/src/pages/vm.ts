// One VM: state, power actions (confirmed), console buttons, and provisioning progress (SSE).
import { api, explain, type Schemas, unwrap } from '../api';
import { badge, confirmDialog, h, mount, notice, say, table, time } from '../dom';
import { sshCommand } from './vms';

type CustomerVm = Schemas['CustomerVm'];
type Job = Schemas['JobView'];

let timer: number | undefined;
let events: EventSource | undefined;

export function stopVmPage(): void {
  if (timer !== undefined) window.clearInterval(timer);
  timer = undefined;
  events?.close();
  events = undefined;
}

const ACTIONS: [Schemas['PowerAction'], string, string][] = [
  ['start', 'Start', 'Start this VM?'],
  ['shutdown', 'Shut down', 'Shut down this VM gracefully?'],
  ['reboot', 'Reboot', 'Reboot this VM?'],
  ['stop', 'Force stop', 'Force stop this VM? Unsaved data in the VM is lost.'],
];

/** The VM as its owner sees it (an operator's view made into one), and its service's jobs. */
async function load(id: number): Promise<{ vm: CustomerVm; jobs: Job[] }> {
  const [vm, service] = await Promise.all([
    unwrap(api.GET('/vms/{id}', { params: { path: { id } } })),
    unwrap(api.GET('/services/{id}', { params: { path: { id } } })),
  ]);
  return { vm: 'service' in vm ? fromOperatorView(vm) : vm, jobs: service.jobs };
}

/** An operator's view: the service, with the power and size the cluster reports. */
function fromOperatorView(answer: Schemas['OperatorVmDetail']): CustomerVm {
  const { service, vm } = answer;
  return {
    id: service.id, name: service.name, state: service.state, plan: service.plan, power: vm?.status ?? 'unknown',
    cores: vm?.cores, memory_bytes: vm?.memory_bytes, disk_bytes: vm?.disk_bytes, ssh: answer.ssh, actions: answer.actions,
  };
}

export async function vmPage(id: number): Promise<void> {
  stopVmPage();
  const status = notice('info', 'Loading…');
  mount(h('h1', {}, 'VM'), status);
  let data: { vm: CustomerVm; jobs: Job[] };
  try {
    data = await load(id);
  } catch (err) {
    say(status, explain(err), 'error');
    return;
  }
  const stateCell = h('dd', { id: 'vm-state' });
  const powerCell = h('dd', { id: 'vm-power' });
  const sshCell = h('dd', { id: 'vm-ssh' });
  const actionStatus = notice();
  const buttons = ACTIONS.map(([action, label, question]) =>
    h('button', { type: 'button', class: action === 'stop' ? 'danger' : 'secondary', 'data-action': action, onclick: () => void power(id, action, question, label, actionStatus) }, label));
  const consoleLink = h('a', { class: 'button', href: `/vms/${id}/console`, id: 'open-console' }, 'Console');
  const termLink = h('a', { class: 'button secondary', href: `/vms/${id}/terminal`, id: 'open-terminal' }, 'Terminal');
  const consoleNote = h('p', { class: 'hint', id: 'console-note' });
  const failure = notice();
  failure.id = 'failure';
  const progress = h('ol', { class: 'progress', 'aria-live': 'polite', id: 'progress' });
  const jobs = h('div', { id: 'jobs' });

  const paint = (vm: CustomerVm, jobList: Job[]) => {
    stateCell.replaceChildren(badge(vm.state));
    powerCell.replaceChildren(badge(vm.power));
    sshCell.replaceChildren(sshCommand(vm.ssh) || 'No public hostname yet');
    // The daemon decides what is possible now; the page only shows it.
    const { actions } = vm;
    for (const b of buttons) b.disabled = !actions.power.some((action) => action === b.dataset.action);
    for (const a of [consoleLink, termLink]) {
      a.setAttribute('aria-disabled', String(!actions.console));
      a.classList.toggle('disabled', !actions.console);
      a.tabIndex = actions.console ? 0 : -1;
    }
    consoleNote.textContent = actions.console || !actions.unavailable ? '' : `The console is unavailable: ${actions.unavailable}.`;
    const failed = jobList.find((j) => j.failure);
    failure.hidden = !(vm.state === 'failed' && failed);
    if (vm.state === 'failed' && failed) say(failure, `This order could not be completed: ${failed.failure}. Nothing of it was left behind and nothing runs. Contact support, or order again.`, 'error');
    jobs.replaceChildren(jobList.length ? table(['Job', 'Kind', 'State', 'Step', 'Updated'],
      jobList.map((j) => [String(j.id), j.kind, badge(j.state), j.step, time(j.updated_at)]), 'Jobs') : '');
  };
  mount(
    h('p', { class: 'crumbs' }, h('a', { href: '/vms' }, '← My VMs')),
    h('h1', {}, data.vm.name),
    failure,
    h('dl', { class: 'facts' },
      h('dt', {}, 'State'), stateCell,
      h('dt', {}, 'Power'), powerCell,
      h('dt', {}, 'Plan'), h('dd', {}, data.vm.plan ?? ''),
      h('dt', {}, 'SSH'), sshCell,
    ),
    h('section', { 'aria-labelledby': 'console-h' }, h('h2', { id: 'console-h' }, 'Console'), h('div', { class: 'actions' }, consoleLink, termLink), consoleNote),
    h('section', { 'aria-labelledby': 'power-h' }, h('h2', { id: 'power-h' }, 'Power'), h('div', { class: 'actions' }, ...buttons), actionStatus),
    h('section', { 'aria-labelledby': 'progress-h' }, h('h2', { id: 'progress-h' }, 'Progress'), progress, jobs),
  );
  for (const a of [consoleLink, termLink]) {
    a.addEventListener('click', (e) => { if (a.classList.contains('disabled')) { e.preventDefault(); e.stopPropagation(); } }, true);
  }
  paint(data.vm, data.jobs);
  follow(id, progress, () => void refresh());
  const refresh = async () => {
    try {
      const next = await load(id);
      paint(next.vm, next.jobs);
    } catch { /* keep the last view; the next tick tries again */ }
  };
  timer = window.setInterval(() => {
    if (!document.getElementById('vm-state')) return stopVmPage();
    void refresh();
  }, 3000);
}

function follow(id: number, list: HTMLElement, changed: () => void): void {
  events = new EventSource(`/api/v1/services/${id}/events`);
  events.addEventListener('progress', (event: MessageEvent<string>) => {
    const p: Schemas['ProgressEvent'] = JSON.parse(event.data);
    list.append(h('li', { 'data-status': p.status }, `${time(p.at)} — ${p.step.replace(/_/g, ' ')}: ${p.status}${p.message ? ` (${p.message})` : ''}`));
    changed();
  });
}

async function power(id: number, action: Schemas['PowerAction'], question: string, label: string, status: HTMLElement): Promise<void> {
  if (!(await confirmDialog(question, label))) return;
  say(status, `${label}: sending…`, 'info');
  try {
    await unwrap(api.POST('/vms/{id}/power', { params: { path: { id } }, body: { action } }));
    say(status, `${label}: requested. The state updates in a few seconds.`, 'ok');
  } catch (err) {
    say(status, explain(err), 'error');
  }
}
