// A customer orders a VM for themselves; then the VM page follows its provisioning.
import { api, explain, type Schemas, unwrap } from '../api';
import { field, h, mount, notice, say } from '../dom';
import { go } from '../main';
import { keyChoices } from './ssh-keys';

export async function orderPage(): Promise<void> {
  const status = notice();
  // Customers get the plans on offer; operators, the whole catalogue, whose retired plans no order may use.
  let plans: Schemas['OfferedPlan'][];
  let keychain: Schemas['StoredKey'][];
  try {
    const [catalogue, stored] = await Promise.all([unwrap(api.GET('/plans')), unwrap(api.GET('/ssh-keys'))]);
    plans = catalogue.filter((p) => !('retired' in p && p.retired));
    keychain = stored;
  } catch (err) {
    mount(h('h1', {}, 'Order a VM'), notice('error', explain(err)));
    return;
  }
  if (plans.length === 0) {
    mount(h('h1', {}, 'Order a VM'), notice('info', 'No plans are on offer yet.'));
    return;
  }
  const plan = h('select', { name: 'plan', required: true }, ...plans.map((p) => h('option', { value: p.name }, `${p.name} — ${p.cores} vCPU, ${p.memory_mib} MiB, ${p.disk_gib} GiB`)));
  const template = h('select', { name: 'template', required: true });
  const fillTemplates = () => {
    const chosen = plans.find((p) => p.name === plan.value);
    template.replaceChildren(...(chosen?.templates ?? []).map((t) => h('option', { value: t }, t)));
  };
  plan.addEventListener('change', fillTemplates);
  fillTemplates();
  const hostname = h('input', { name: 'hostname', required: true, pattern: '[a-z0-9]([a-z0-9\\-]{0,61}[a-z0-9])?', autocomplete: 'off' });
  const username = h('input', { name: 'username', required: true, value: 'debian', autocomplete: 'off' });
  const chosenKeys = keyChoices(keychain, 'SSH keys from your keychain');
  const keys = h('textarea', { name: 'ssh_keys', rows: 3, placeholder: 'ssh-ed25519 AAAA… you@laptop' });
  const submit = h('button', { type: 'submit' }, 'Order');
  const form = h('form', { class: 'card' },
    field('Plan', plan), field('Template', template), field('Hostname', hostname), field('Login user', username),
    chosenKeys.element, field(keychain.length ? 'Other SSH public keys (one a line)' : 'SSH public keys (one a line)', keys), status, submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    say(status, 'Ordering…', 'info');
    try {
      const receipt = await unwrap(api.POST('/orders', { body: {
        plan: plan.value, template: template.value, hostname: hostname.value, username: username.value,
        ssh_keys: keys.value.split('\n').map((k) => k.trim()).filter(Boolean),
        ssh_key_ids: chosenKeys.chosen(),
      } }));
      go(`/vms/${receipt.service_id}`);
    } catch (err) {
      say(status, explain(err), 'error');
    } finally {
      submit.disabled = false;
    }
  });
  mount(h('h1', {}, 'Order a VM'), form);
}
