// The VM page's reinstall: a fresh copy of one of the templates the VM's plan offers replaces its
// disk, with keys from the owner's keychain and a new password for its user (shown this once).
// The VM's name is typed to confirm: everything on the disk is lost. Progress follows on the
// page's event stream like an order's.
import { api, explain, idempotencyKey, type Schemas, unwrap } from '../api';
import { field, h, notice, say, shownOnce, typedConfirm } from '../dom';
import { keyChoices } from './ssh-keys';
import { type CustomerVm, type Job, jobWatcher, outcome, type Section } from './vm-sections';

/**
 * `ownKeys`: whether the person looking owns the VM, so that their keychain is the one the daemon
 * takes the keys from (an operator looking at a customer's VM sees only their own).
 */
export function reinstallSection(id: number, vm: CustomerVm, ownKeys: boolean): Section & { focus(): void } {
  const heading = h('h2', { id: 'reinstall-h', tabindex: -1 }, 'Reinstall');
  const body = h('div', {}, notice('info', 'Loading…'));
  const status = notice();
  status.id = 'reinstall-status';
  status.tabIndex = -1;
  const result = h('div', { id: 'reinstall-result' });
  const watcher = jobWatcher();
  const element = h('section', { 'aria-labelledby': 'reinstall-h', id: 'reinstall' }, heading, body, status, result);

  const reinstall = async (template: string, keyIds: number[]) => {
    const confirmed = await typedConfirm(`Reinstall ${vm.name} from ${template}?`,
      `Its disk is replaced with a fresh copy of ${template}: everything on the disk is lost. It keeps its name, addresses and SSH hostname; its user gets a new password, shown once.`,
      vm.name, 'Reinstall');
    if (!confirmed) return;
    result.replaceChildren();
    say(status, 'Starting the reinstall…', 'info');
    try {
      // One key per confirmed click: the same request sent twice is one reinstall.
      const accepted = await unwrap(api.POST('/vms/{id}/reinstall', {
        params: { path: { id }, header: { 'Idempotency-Key': idempotencyKey() } },
        body: { template, ssh_key_ids: keyIds },
      }));
      say(status, `Reinstalling from ${template}: the progress is below.`, 'info');
      result.replaceChildren(accepted.password
        ? shownOnce(`New password for ${accepted.username}`, `Password for ${accepted.username}`, accepted.password, 'reinstall-password-value')
        : h('p', { class: 'notice warning' }, `This reinstall had been asked for already; the password of ${accepted.username} was shown then.`));
      watcher.watch(accepted.job_id, (job: Job) => {
        const [text, kind] = outcome(job, `Reinstalled from ${template}.`, 'The reinstall');
        say(status, text, kind);
      });
      const secret = document.getElementById('reinstall-password-value');
      if (secret) secret.focus();
      else status.focus();
    } catch (err) {
      // A template the plan does not offer (400), or not possible now, with the reason (409).
      say(status, explain(err), 'error');
      status.focus();
    }
  };

  void fill(vm, ownKeys, body, (template, keyIds) => void reinstall(template, keyIds));
  return {
    element,
    update(_vm: CustomerVm, jobs: Job[]) {
      watcher.update(jobs);
    },
    focus() {
      element.scrollIntoView({ block: 'start' });
      heading.focus();
    },
  };
}

/** The form, once the plan's templates (and the keychain) are known; or why there is none. */
async function fill(vm: CustomerVm, ownKeys: boolean, body: HTMLElement, go: (template: string, keyIds: number[]) => void): Promise<void> {
  let plans: Schemas['PlanList'];
  let keys: Schemas['StoredKey'][];
  try {
    [plans, keys] = await Promise.all([unwrap(api.GET('/plans')), ownKeys ? unwrap(api.GET('/ssh-keys')) : Promise.resolve([])]);
  } catch (err) {
    body.replaceChildren(notice('error', explain(err)));
    return;
  }
  // Customers are listed the plans still offered; operators, every plan (a retired one's
  // templates still serve the VMs on it, and the daemon reinstalls from them).
  const plan = plans.find((p) => p.name === vm.plan);
  if (!plan || plan.templates.length === 0) {
    body.replaceChildren(h('p', { id: 'reinstall-none' }, vm.plan
      ? `The plan ${vm.plan} is no longer offered, so there are no templates to reinstall from here. Contact support to reinstall this VM.`
      : 'This VM has no plan, so there are no templates to reinstall from here. Contact support to reinstall it.'));
    return;
  }
  const template = h('select', { name: 'template', id: 'reinstall-template', required: true },
    ...plan.templates.map((t) => h('option', { value: t }, t)));
  const choices = ownKeys
    ? keyChoices(keys, 'SSH keys to install for its user')
    : { element: h('p', { class: 'hint' }, "The VM's owner chooses keys from their keychain when they reinstall it; reinstalled from here, it gets none. Its user gets a new password."), chosen: () => [] };
  const submit = h('button', { type: 'submit', class: 'danger' }, 'Reinstall…');
  const form = h('form', { class: 'card', 'aria-labelledby': 'reinstall-form-h' },
    h('h3', { id: 'reinstall-form-h', class: 'card-title' }, 'What to install'),
    h('p', { class: 'notice warning' }, 'Everything on the disk is lost: the VM gets a fresh copy of the template. It keeps its name, addresses and SSH hostname.'),
    field('Template', template),
    choices.element,
    submit);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    go(template.value, choices.chosen());
  });
  body.replaceChildren(form);
}
