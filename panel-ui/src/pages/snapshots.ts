// The VM page's snapshots: the list (the one the VM descends from is marked current), taking one
// within the plan's maximum, rolling back to one (its name is typed to confirm: everything written
// since is lost) and deleting one. Each is a job: the list is read again when the VM's jobs that
// change it move on.
import { api, explain, type Schemas, unwrap } from '../api';
import { badge, confirmDialog, field, h, notice, say, table, time, typedConfirm } from '../dom';
import { type CustomerVm, type Job, jobsSignature, jobWatcher, outcome, type Section } from './vm-sections';

type Snapshot = Schemas['Snapshot'];

/** Jobs that change the list: a reinstall or a restore replaces the disks the snapshots are of. */
const LIST_JOBS: Schemas['JobKind'][] = ['snapshot', 'rollback', 'delete_snapshot', 'reinstall', 'restore'];

export function snapshotsSection(id: number, vmName: string): Section {
  const status = notice();
  status.id = 'snapshots-status';
  status.tabIndex = -1;
  const count = h('p', { id: 'snapshot-count' });
  const list = h('div', { id: 'snapshot-list' });
  const watcher = jobWatcher();
  let signature: string | undefined;
  let shown: Snapshot[] = [];
  let max = 0;

  const name = h('input', { name: 'snapshot_name', required: true, minlength: 2, maxlength: 40, pattern: '[A-Za-z][A-Za-z0-9_\\-]{1,39}', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'snapshot-name-hint' });
  const description = h('input', { name: 'snapshot_description', maxlength: 200, autocomplete: 'off' });
  const submit = h('button', { type: 'submit' }, 'Take snapshot');
  const form = h('form', { class: 'inline card', 'aria-labelledby': 'take-snapshot-h' },
    h('h3', { id: 'take-snapshot-h', class: 'form-title' }, 'Take a snapshot'),
    field('Snapshot name', name), field('Description (optional)', description), submit,
    h('p', { class: 'hint full', id: 'snapshot-name-hint' }, '2 to 40 letters, digits, _ or -, starting with a letter.'));

  /**
   * Reads the list again. Without one (a VM not active yet answers why), the reason stands in for
   * the count, and nothing is offered until a later update brings a list.
   */
  const reload = async () => {
    try {
      const answer = await unwrap(api.GET('/vms/{id}/snapshots', { params: { path: { id } } }));
      draw(answer.snapshots, answer.max);
    } catch (err) {
      count.textContent = explain(err);
      form.hidden = true;
      list.replaceChildren();
    }
  };

  /** Starts a job and says so; `done` and `what` word its outcome once it has finished. */
  const started = (receipt: Schemas['OrderReceipt'], now: string, done: string, what: string) => {
    say(status, now, 'info');
    watcher.watch(receipt.job_id, (job: Job) => {
      const [text, kind] = outcome(job, done, what);
      say(status, text, kind);
    });
    void reload();
  };

  const rollBack = async (snapshot: Snapshot) => {
    const confirmed = await typedConfirm(`Roll ${vmName} back to the snapshot “${snapshot.name}”?`,
      `Its disks return to how they were when the snapshot was taken${snapshot.taken_at ? ` (${time(snapshot.taken_at)})` : ''}: everything written to them since is lost. A running VM runs again afterwards.`,
      snapshot.name, 'Roll back');
    if (!confirmed) return;
    try {
      const receipt = await unwrap(api.POST('/vms/{id}/snapshots/{name}/rollback', { params: { path: { id, name: snapshot.name } }, body: { confirm: snapshot.name } }));
      started(receipt, `Rolling back to “${snapshot.name}”…`, `Rolled back to “${snapshot.name}”.`, `The rollback to “${snapshot.name}”`);
    } catch (err) {
      say(status, explain(err), 'error');
    }
    status.focus();
  };

  const remove = async (snapshot: Snapshot) => {
    if (!(await confirmDialog(`Delete the snapshot “${snapshot.name}”? The VM as it runs now is not touched.`, 'Delete snapshot'))) return;
    try {
      const receipt = await unwrap(api.DELETE('/vms/{id}/snapshots/{name}', { params: { path: { id, name: snapshot.name } } }));
      started(receipt, `Deleting “${snapshot.name}”…`, `Snapshot “${snapshot.name}” deleted.`, `Deleting “${snapshot.name}”`);
    } catch (err) {
      say(status, explain(err), 'error');
    }
    status.focus();
  };

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    const chosen = name.value.trim();
    try {
      const receipt = await unwrap(api.POST('/vms/{id}/snapshots', { params: { path: { id } }, body: { name: chosen, description: description.value.trim() } }));
      form.reset();
      started(receipt, `Taking the snapshot “${chosen}”…`, `Snapshot “${chosen}” taken.`, `Taking the snapshot “${chosen}”`);
    } catch (err) {
      // A bad name (400), or the plan's maximum, a name taken, the VM busy (409): the reason says which.
      say(status, explain(err), 'error');
      name.focus();
    } finally {
      submit.disabled = false;
      drawCount();
    }
  });

  /** "n of max", and the form only while another fits: the plan's maximum is the daemon's rule. */
  const drawCount = () => {
    if (max === 0) {
      count.textContent = "This VM's plan offers no snapshots.";
      form.hidden = true;
      return;
    }
    count.textContent = `${shown.length} of ${max} snapshots.${shown.length >= max ? ' Delete one to take another.' : ''}`;
    form.hidden = false;
    submit.disabled = shown.length >= max;
  };

  const draw = (snapshots: Snapshot[], most: number) => {
    shown = snapshots;
    max = most;
    drawCount();
    const rows = snapshots.map((s) => [
      h('span', { class: 'snapshot-name' }, s.name, s.current ? ' ' : '', s.current ? badge('current') : ''),
      s.description,
      time(s.taken_at),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'small secondary', 'aria-label': `Roll back to ${s.name}`, onclick: () => void rollBack(s) }, 'Roll back'),
        h('button', { type: 'button', class: 'small danger', 'aria-label': `Delete the snapshot ${s.name}`, onclick: () => void remove(s) }, 'Delete')),
    ]);
    list.replaceChildren(rows.length ? table(['Name', 'Description', 'Taken', 'Actions'], rows, 'Snapshots, oldest first') : '');
  };

  const element = h('section', { 'aria-labelledby': 'snapshots-h', id: 'snapshots' },
    h('h2', { id: 'snapshots-h' }, 'Snapshots'),
    h('p', { class: 'hint' }, "A snapshot keeps the VM's disks as they are (not its memory); rolling back returns them to it. “current” marks the snapshot the VM descends from now."),
    count, list, status, form);
  void reload();

  return {
    element,
    update(vm: CustomerVm, jobs: Job[]) {
      watcher.update(jobs);
      // The list follows the jobs that change it, whoever started them, and the VM's state (a
      // VM being built has none yet).
      const next = `${vm.state} ${jobsSignature(jobs, LIST_JOBS)}`;
      if (signature !== undefined && next !== signature) void reload();
      signature = next;
    },
  };
}
