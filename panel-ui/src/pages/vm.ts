// One VM: state, addresses and their reverse DNS, power actions (confirmed), console buttons, graphs,
// backups, snapshots, password reset, reinstall, and the progress of its jobs (SSE). Operators viewing a customer's VM get the same
// page: they may do all of it too.
import { api, explain, type Schemas, unwrap } from '../api';
import { badge, confirmDialog, h, mount, notice, say, table, time } from '../dom';
import { currentUser } from '../main';
import { addressesSection } from './addresses';
import { backupsSection } from './backups';
import { graphsSection } from './graphs';
import { reinstallSection } from './reinstall';
import { snapshotsSection } from './snapshots';
import { passwordSection } from './vm-password';
import type { CustomerVm, Job, Section } from './vm-sections';
import { sshCommand } from './vms';

/** The VM as the page shows it, its service's jobs, and whether the person looking owns it. */
type Loaded = { vm: CustomerVm; jobs: Job[]; owned: boolean };

let timer: number | undefined;
let events: EventSource | undefined;
/** The sections of the page shown, told when it is left (the graphs let go of their charts). */
let shownSections: Section[] = [];

export function stopVmPage(): void {
  if (timer !== undefined) window.clearInterval(timer);
  timer = undefined;
  events?.close();
  events = undefined;
  for (const section of shownSections) section.stop?.();
  shownSections = [];
}

/** The customer's own operations, named for a sentence: a parked one is told at the top. */
const SELF_SERVICE: Partial<Record<Schemas['JobKind'], string>> = {
  reinstall: 'reinstall', snapshot: 'snapshot', rollback: 'rollback', delete_snapshot: 'snapshot deletion',
  backup: 'backup', restore: 'restore', reverse_dns: 'reverse DNS change',
};

const ACTIONS: [Schemas['PowerAction'], string, string][] = [
  ['start', 'Start', 'Start this VM?'],
  ['shutdown', 'Shut down', 'Shut down this VM gracefully?'],
  ['reboot', 'Reboot', 'Reboot this VM?'],
  ['stop', 'Force stop', 'Force stop this VM? Unsaved data in the VM is lost.'],
];

/** The VM as its owner sees it (an operator's view made into one), and its service's jobs. */
async function load(id: number): Promise<Loaded> {
  const [vm, service] = await Promise.all([
    unwrap(api.GET('/vms/{id}', { params: { path: { id } } })),
    unwrap(api.GET('/services/{id}', { params: { path: { id } } })),
  ]);
  if ('service' in vm) return { vm: fromOperatorView(vm), jobs: service.jobs, owned: vm.service.owner_id === currentUser()?.id };
  return { vm, jobs: service.jobs, owned: true };
}

/** An operator's view: the service, with the power and size the cluster reports. */
function fromOperatorView(answer: Schemas['OperatorVmDetail']): CustomerVm {
  const { service, vm } = answer;
  return {
    id: service.id, name: service.name, state: service.state, plan: service.plan, power: vm?.status ?? 'unknown',
    cores: vm?.cores, memory_bytes: vm?.memory_bytes, disk_bytes: vm?.disk_bytes, ssh: answer.ssh, addresses: answer.addresses,
    actions: answer.actions,
  };
}

export async function vmPage(id: number): Promise<void> {
  stopVmPage();
  const status = notice('info', 'Loading…');
  mount(h('h1', {}, 'VM'), status);
  let data: Loaded;
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
    h('button', { type: 'button', class: action === 'stop' ? 'danger' : 'secondary', 'data-action': action, 'aria-describedby': 'power-note', onclick: () => void power(id, action, question, label, actionStatus) }, label));
  const consoleLink = h('a', { class: 'button', href: `/vms/${id}/console`, id: 'open-console' }, 'Console');
  const termLink = h('a', { class: 'button secondary', href: `/vms/${id}/terminal`, id: 'open-terminal' }, 'Terminal');
  const consoleNote = h('p', { class: 'hint', id: 'console-note' });
  const powerNote = h('p', { class: 'hint', id: 'power-note' });
  const failure = notice();
  failure.id = 'failure';
  const parked = h('p', { class: 'notice warning', role: 'status', id: 'parked', hidden: true });
  const progress = h('ol', { class: 'progress', 'aria-live': 'polite', id: 'progress' });
  const jobs = h('div', { id: 'jobs' });
  const reinstall = reinstallSection(id, data.vm, data.owned);
  // In the facts at the top, not a section of its own: its jobs' ends read the VM again at once.
  const addresses = addressesSection(id, () => void refresh());
  const sections: Section[] = [graphsSection(id), backupsSection(id, data.vm.name), snapshotsSection(id, data.vm.name),
    passwordSection(id, data.vm.name, () => reinstall.focus()), reinstall];
  shownSections = sections;

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
    // While the daemon allows no power action (an operation under way, a VM not built yet), why.
    powerNote.textContent = actions.power.length || !actions.unavailable ? '' : `Power actions are unavailable: ${actions.unavailable}.`;
    const failed = jobList.find((j) => j.kind === 'provision' && j.failure);
    failure.hidden = !(vm.state === 'failed' && failed);
    if (vm.state === 'failed' && failed) say(failure, `This order could not be completed: ${failed.failure}. Nothing of it was left behind and nothing runs. Contact support, or order again.`, 'error');
    // The newest of the customer's own operations, when it stopped: what failed, in their words.
    const newest = jobList.filter((j) => SELF_SERVICE[j.kind]).reduce<Job | undefined>((a, j) => (!a || j.id > a.id ? j : a), undefined);
    const stopped = newest?.state === 'parked'
      ? `The ${SELF_SERVICE[newest.kind]} did not finish${newest.failure ? `: ${newest.failure}` : ''}. It waits for an operator; contact support if you need it sooner.`
      : '';
    if (parked.textContent !== stopped) say(parked, stopped);
    const problems = jobList.some((j) => j.failure);
    jobs.replaceChildren(jobList.length ? table(['Job', 'Kind', 'State', 'Step', 'Updated', ...(problems ? ['Problem'] : [])],
      jobList.map((j) => [String(j.id), j.kind.replace(/_/g, ' '), badge(j.state), j.step.replace(/_/g, ' '), time(j.updated_at), ...(problems ? [j.failure ?? ''] : [])]), 'Jobs') : '');
    addresses.update(vm, jobList);
    for (const section of sections) section.update(vm, jobList);
  };
  mount(
    h('p', { class: 'crumbs' }, h('a', { href: '/vms' }, '← My VMs')),
    h('h1', {}, data.vm.name),
    failure,
    parked,
    h('dl', { class: 'facts' },
      h('dt', {}, 'State'), stateCell,
      h('dt', {}, 'Power'), powerCell,
      h('dt', {}, 'Plan'), h('dd', {}, data.vm.plan ?? ''),
      h('dt', {}, 'Addresses'), addresses.element,
      h('dt', {}, 'SSH'), sshCell,
    ),
    h('section', { 'aria-labelledby': 'console-h' }, h('h2', { id: 'console-h' }, 'Console'), h('div', { class: 'actions' }, consoleLink, termLink), consoleNote),
    h('section', { 'aria-labelledby': 'power-h' }, h('h2', { id: 'power-h' }, 'Power'), h('div', { class: 'actions' }, ...buttons), powerNote, actionStatus),
    ...sections.map((section) => section.element),
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
