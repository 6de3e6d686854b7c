// The VM page's password reset: a new root password set in the running VM through its QEMU guest
// agent, shown this once. Without a running VM or an answering agent the daemon says why (409),
// and the way to a known password is then a reinstall, which the section points to.
import { api, ApiError, explain, unwrap } from '../api';
import { confirmDialog, h, notice, say, shownOnce } from '../dom';
import type { CustomerVm, Job, Section } from './vm-sections';

/** Jobs that put back another disk, and with it another password. */
const REPLACES_DISK = new Set<Job['kind']>(['reinstall', 'rollback', 'restore']);

export function passwordSection(id: number, vmName: string, toReinstall: () => void): Section {
  const status = notice();
  status.id = 'password-reset-status';
  status.tabIndex = -1;
  const result = h('div', { id: 'password-reset-result' });
  const instead = h('button', { type: 'button', class: 'secondary', id: 'password-reinstall', hidden: true, onclick: toReinstall }, 'Reinstall instead');
  const reset = h('button', { type: 'button', id: 'reset-password' }, 'Reset root password');
  // The newest job when a password was shown: a reinstall or rollback after it makes it stale.
  let shownAfter: number | undefined;
  let newestJob = 0;
  reset.addEventListener('click', async () => {
    if (!(await confirmDialog(`Set a new root password on ${vmName}? The current one stops working.`, 'Reset password'))) return;
    reset.disabled = true;
    instead.hidden = true;
    result.replaceChildren();
    say(status, 'Setting a new password…', 'info');
    try {
      const answer = await unwrap(api.POST('/vms/{id}/password', { params: { path: { id } }, body: { username: 'root' } }));
      say(status, `The password of ${answer.username} has been changed.`, 'ok');
      shownAfter = newestJob;
      result.replaceChildren(shownOnce(`New password for ${answer.username}`, `Password for ${answer.username}`, answer.password, 'vm-password-value'));
      document.getElementById('vm-password-value')?.focus();
    } catch (err) {
      say(status, explain(err), 'error');
      // Not running, or no guest agent: a reinstall sets a password without one.
      instead.hidden = !(err instanceof ApiError && err.status === 409);
      status.focus();
    } finally {
      reset.disabled = false;
    }
  });
  const element = h('section', { 'aria-labelledby': 'password-reset-h', id: 'password-reset' },
    h('h2', { id: 'password-reset-h' }, 'Password'),
    h('p', { class: 'hint' }, 'Sets a new password for root in the running VM, through its QEMU guest agent. The password is shown once.'),
    h('div', { class: 'actions' }, reset, instead),
    status, result);
  return {
    element,
    update(_vm: CustomerVm, jobs: Job[]) {
      newestJob = Math.max(newestJob, ...jobs.map((j) => j.id));
      if (shownAfter === undefined || !jobs.some((j) => j.id > (shownAfter ?? 0) && REPLACES_DISK.has(j.kind))) return;
      shownAfter = undefined;
      result.replaceChildren();
      say(status, 'The VM has been reinstalled, rolled back or restored since the password was reset here, so that password may no longer work.', 'info');
    },
  };
}
