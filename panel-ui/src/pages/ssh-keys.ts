// The account's SSH keychain: public keys kept by name, to install on a VM at its order or
// reinstall without pasting them each time. The daemon parses each key (the reason comes back
// when it is not one) and answers its fingerprint, which is what people compare with
// `ssh-keygen -l`.
import { api, explain, type Schemas, unwrap } from '../api';
import { confirmDialog, field, h, mount, notice, say, table, time } from '../dom';
import { accountNav } from './account';

type StoredKey = Schemas['StoredKey'];

export const SSH_KEYS_PATH = '/account/ssh-keys';

/** A fingerprint, which wraps anywhere rather than widening a phone's page. */
function fingerprint(key: StoredKey): HTMLElement {
  return h('code', { class: 'fingerprint' }, key.fingerprint);
}

/** `/account/ssh-keys`: the keychain, a form to add a key, and removing one. */
export async function sshKeysPage(): Promise<void> {
  mount(h('h1', {}, 'SSH keys'), accountNav('ssh-keys'), notice('info', 'Loading…'));
  let keys: StoredKey[];
  try {
    keys = await unwrap(api.GET('/ssh-keys'));
  } catch (err) {
    mount(h('h1', {}, 'SSH keys'), accountNav('ssh-keys'), notice('error', explain(err)));
    return;
  }
  const box = h('section', { 'aria-labelledby': 'keys-h' });
  mount(h('h1', {}, 'SSH keys'), accountNav('ssh-keys'),
    h('p', { class: 'hint' }, 'Keys kept here can be chosen when you order a VM or reinstall one. Removing a key here does not remove it from VMs that have it.'),
    box);
  showKeys(box, keys);
}

/** Fills `box` with the list and the form; `said` is what the last change did. */
function showKeys(box: HTMLElement, keys: StoredKey[], said?: [string, 'ok' | 'error']): void {
  const status = notice(said?.[1] ?? 'info', said?.[0] ?? '');
  status.id = 'keys-status';
  status.tabIndex = -1;
  // The list afresh, or (should it not come) the list as it must be now.
  const reload = async (expected: StoredKey[], text: string) => {
    let list = expected;
    try {
      list = await unwrap(api.GET('/ssh-keys'));
    } catch { /* keep the expected list */ }
    showKeys(box, list, [text, 'ok']);
    document.getElementById('keys-status')?.focus();
  };
  const remove = async (key: StoredKey) => {
    if (!(await confirmDialog(`Remove the key “${key.name}” from your keychain? VMs that have it keep it.`, 'Remove key'))) return;
    try {
      await unwrap(api.DELETE('/ssh-keys/{id}', { params: { path: { id: key.id } } }));
      await reload(keys.filter((k) => k.id !== key.id), `Key “${key.name}” removed.`);
    } catch (err) {
      say(status, explain(err), 'error');
      status.focus();
    }
  };
  const rows = keys.map((k) => [
    k.name, fingerprint(k), time(k.created_at),
    h('button', { type: 'button', class: 'small danger', 'aria-label': `Remove the key ${k.name}`, onclick: () => void remove(k) }, 'Remove'),
  ]);

  const name = h('input', { name: 'name', required: true, maxlength: 64, autocomplete: 'off' });
  const line = h('textarea', { name: 'public_key', id: 'new-key-line', required: true, rows: 4, spellcheck: 'false', autocomplete: 'off', 'aria-describedby': 'new-key-hint', placeholder: 'ssh-ed25519 AAAA… you@laptop' });
  // A key's comment is usually the name people know it by: offered when no name was given.
  line.addEventListener('change', () => {
    const comment = line.value.trim().split(/\s+/).slice(2).join(' ');
    if (!name.value && comment) name.value = comment.slice(0, 64);
  });
  const formStatus = notice();
  formStatus.id = 'new-key-status';
  const submit = h('button', { type: 'submit' }, 'Add key');
  const form = h('form', { class: 'card', 'aria-labelledby': 'new-key-h' },
    h('h3', { id: 'new-key-h', class: 'card-title' }, 'Add a key'),
    field('Key name', name),
    field('Public key', line),
    h('p', { class: 'hint', id: 'new-key-hint' }, 'One line of your .pub file, for example ~/.ssh/id_ed25519.pub. Ed25519, ECDSA and RSA keys of 2048 bits or more are accepted.'),
    formStatus, submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    say(formStatus, 'Adding the key…', 'info');
    try {
      const added = await unwrap(api.POST('/ssh-keys', { body: { name: name.value.trim(), public_key: line.value.trim() } }));
      await reload([...keys, added], `Key “${added.name}” added: ${added.fingerprint}.`);
    } catch (err) {
      // A key that is not one says why (400); a name or key already kept, or a full keychain (409).
      say(formStatus, explain(err), 'error');
      submit.disabled = false;
      line.focus();
    }
  });

  box.replaceChildren(
    h('h2', { id: 'keys-h' }, 'Your keys'),
    status,
    rows.length ? table(['Name', 'Fingerprint', 'Added', 'Action'], rows, 'Your SSH keys') : h('p', { id: 'no-keys' }, 'Your keychain is empty.'),
    form,
  );
}

/**
 * Checkboxes of the keychain's keys, for an order or a reinstall, with a link to manage them;
 * `chosen()` answers the ids ticked. An empty keychain says where to add keys.
 */
export function keyChoices(keys: StoredKey[], legend: string): { element: HTMLElement; chosen: () => number[] } {
  const manage = h('a', { href: SSH_KEYS_PATH }, keys.length ? 'Manage your SSH keys' : 'Add keys to your keychain');
  if (keys.length === 0) {
    return { element: h('div', { class: 'key-choices' }, h('p', { class: 'hint' }, 'Your SSH keychain is empty. ', manage, ' to choose them here.')), chosen: () => [] };
  }
  const boxes = keys.map((k) => [k.id, h('input', { type: 'checkbox', name: 'ssh_key_ids', value: k.id })] as const);
  const element = h('fieldset', { class: 'key-choices' }, h('legend', {}, legend),
    ...boxes.map(([, box], i) => h('label', { class: 'check' }, box, h('span', {}, h('strong', {}, keys[i].name), ' ', fingerprint(keys[i])))),
    h('p', { class: 'hint' }, manage));
  return { element, chosen: () => boxes.filter(([, box]) => box.checked).map(([id]) => id) };
}
