// The VM page's backups: the list (when each was taken, its size), how many the plan keeps and how
// often it backs up by itself, backing up now, and restoring one (the VM's name is typed to
// confirm: everything written since is lost, and the VM is stopped and started again). Both are
// jobs: the list is read again when the VM's backup and restore jobs move on. A plan without
// backups, or a VM not ready for them, has the daemon's reason instead of the controls.
import { api, explain, idempotencyKey, type Schemas, sentence, unwrap } from '../api';
import { bytes, confirmDialog, h, notice, say, table, time, typedConfirm } from '../dom';
import { type CustomerVm, type Job, jobsSignature, jobWatcher, outcome, type Section, underWay } from './vm-sections';

type Backup = Schemas['Backup'];

/** Jobs that change the list, or whose end makes the buttons usable again. */
const LIST_JOBS: Schemas['JobKind'][] = ['backup', 'restore'];

const SCHEDULES: Record<Schemas['BackupSchedule'], string> = {
  none: 'none (only the backups you take here)',
  daily: 'daily',
  weekly: 'weekly',
};

export function backupsSection(id: number, vmName: string): Section {
  const status = notice();
  status.id = 'backups-status';
  status.tabIndex = -1;
  const policy = h('p', { id: 'backup-policy' });
  const list = h('div', { id: 'backup-list' });
  const busyNote = h('p', { class: 'hint', id: 'backups-busy', hidden: true });
  const take = h('button', { type: 'button', id: 'take-backup', 'aria-describedby': 'backups-busy' }, 'Back up now');
  const controls = h('div', { class: 'actions', hidden: true }, take);
  const watcher = jobWatcher();
  let signature: string | undefined;
  let shown: Backup[] = [];
  let kept = 0;
  /** Another operation on the VM is under way: the daemon refuses a backup or restore until it ends. */
  let busy = false;

  take.addEventListener('click', () => void backUpNow());

  const reload = async () => {
    try {
      const answer = await unwrap(api.GET('/vms/{id}/backups', { params: { path: { id } } }));
      draw(answer);
    } catch (err) {
      // No backups on this plan, or none here, or the VM not active yet: the reason says which.
      shown = [];
      kept = 0;
      policy.textContent = explain(err);
      controls.hidden = true;
      list.replaceChildren();
    }
  };

  /** Starts a job and says so; `done` and `what` word its outcome once it has finished. */
  const started = (receipt: Schemas['OrderReceipt'], now: string, done: string, what: string) => {
    say(status, now, 'info');
    busy = true;
    drawButtons();
    watcher.watch(receipt.job_id, (job: Job) => {
      const [text, kind] = outcome(job, done, what);
      say(status, text, kind);
    });
  };

  const backUpNow = async () => {
    // At the plan's number, the new backup's job removes the oldest: that is asked first.
    const oldest = shown[0];
    if (kept > 0 && shown.length >= kept && oldest
      && !(await confirmDialog(`Back up ${vmName} now? Your plan keeps ${kept} backups, so the oldest (${time(oldest.taken_at) || 'of unknown date'}) is removed once the new one is taken.`, 'Back up now'))) return;
    take.disabled = true;
    try {
      // One key per click: the same request sent twice is one backup.
      const receipt = await unwrap(api.POST('/vms/{id}/backups', { params: { path: { id }, header: { 'Idempotency-Key': idempotencyKey() } } }));
      started(receipt, `Backing up ${vmName}…`, 'Backup taken.', 'The backup');
    } catch (err) {
      // Another operation under way, or the VM busy (409): the reason says which.
      say(status, explain(err), 'error');
    } finally {
      drawButtons();
    }
    status.focus();
  };

  const restore = async (backup: Backup) => {
    const when = time(backup.taken_at) || 'an unknown date';
    const confirmed = await typedConfirm(`Restore ${vmName} from the backup of ${when}?`,
      `${vmName} is stopped, its disks are replaced with this backup, and it is started again. Everything written to it since ${when} is lost.`,
      vmName, 'Restore');
    if (!confirmed) return;
    try {
      const receipt = await unwrap(api.POST('/vms/{id}/backups/{backup}/restore', {
        params: { path: { id, backup: backup.id }, header: { 'Idempotency-Key': idempotencyKey() } },
        body: { confirm: vmName },
      }));
      started(receipt, `Restoring the backup of ${when}: the progress is below.`, `Restored the backup of ${when}.`, `The restore of the backup of ${when}`);
    } catch (err) {
      // Not the VM's name (400), a backup gone meanwhile (404), not possible now (409).
      say(status, explain(err), 'error');
    }
    status.focus();
  };

  const drawButtons = () => {
    take.disabled = busy;
    for (const button of list.querySelectorAll<HTMLButtonElement>('button[data-restore]')) {
      button.disabled = busy;
      if (busy) button.setAttribute('aria-describedby', 'backups-busy');
      else button.removeAttribute('aria-describedby');
    }
  };

  const draw = (answer: Schemas['Backups']) => {
    shown = answer.backups;
    kept = answer.kept;
    if (kept === 0) {
      policy.textContent = "This VM's plan offers no backups.";
      controls.hidden = true;
      list.replaceChildren();
      return;
    }
    policy.textContent = `Kept: ${kept}, the newest; a new backup beyond that removes the oldest. Schedule: ${SCHEDULES[answer.schedule]}.`;
    controls.hidden = false;
    const rows = shown.map((b) => {
      const when = time(b.taken_at) || 'unknown';
      return [
        when,
        bytes(b.size_bytes) || 'unknown',
        h('button', { type: 'button', class: 'small danger', 'data-restore': b.id, 'aria-label': `Restore the backup of ${when}`, onclick: () => void restore(b) }, 'Restore…'),
      ];
    });
    list.replaceChildren(rows.length
      ? table(['Taken', 'Size', 'Actions'], rows, 'Backups, oldest first')
      : h('p', { id: 'no-backups' }, 'No backups yet.'));
    drawButtons();
  };

  const element = h('section', { 'aria-labelledby': 'backups-h', id: 'backups' },
    h('h2', { id: 'backups-h' }, 'Backups'),
    h('p', { class: 'hint' }, "A backup is a copy of the whole VM, its disks and settings, kept apart from it. Restoring one puts it back over the VM as it was when it was taken. The VM keeps running while it is backed up."),
    policy, list, controls, busyNote, status);
  void reload();

  return {
    element,
    update(vm: CustomerVm, jobs: Job[]) {
      watcher.update(jobs);
      busy = jobs.some(underWay);
      busyNote.hidden = !busy || controls.hidden;
      busyNote.textContent = busy ? `${vm.actions.unavailable ? sentence(vm.actions.unavailable) : 'Another operation on this VM is under way.'} Backing up and restoring wait until it has finished.` : '';
      drawButtons();
      const next = `${vm.state} ${jobsSignature(jobs, LIST_JOBS)}`;
      if (signature !== undefined && next !== signature) void reload();
      signature = next;
    },
  };
}
