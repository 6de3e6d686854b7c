// The VM page's addresses, a line each with its family and its reverse DNS (the host name its PTR
// record points to). Where the provider keeps the address's reverse zone, the owner sets or removes
// it: a job, at whose end the page reads the VM again so that the new name shows.
import { api, explain, idempotencyKey, type Schemas, unwrap } from '../api';
import { field, h, notice, say } from '../dom';
import { type CustomerVm, type Job, jobWatcher, outcome, type Section } from './vm-sections';

type VmAddress = Schemas['VmAddress'];

const FAMILIES: Record<Schemas['Family'], string> = { ipv4: 'IPv4', ipv6: 'IPv6' };
const RECORDS: Record<Schemas['Family'], string> = { ipv4: 'an A record', ipv6: 'an AAAA record' };

type Watcher = ReturnType<typeof jobWatcher>;

/** The list, as the `dd` of the page's facts; `refresh` reads the VM again. */
export function addressesSection(id: number, refresh: () => void): Section {
  const element = h('dd', { id: 'vm-addresses' });
  const watcher = jobWatcher();
  let rows = new Map<string, ReturnType<typeof addressRow>>();
  let listed: string | undefined;
  return {
    element,
    update(vm: CustomerVm, jobs: Job[]) {
      watcher.update(jobs);
      // Rows are kept while the addresses stay the same, so that an open form keeps what is typed.
      const next = vm.addresses.map((a) => a.address).join(' ');
      if (next !== listed) {
        listed = next;
        rows = new Map(vm.addresses.map((a) => [a.address, addressRow(id, a, watcher, refresh)]));
        element.replaceChildren(rows.size ? h('ul', { class: 'addresses' }, ...[...rows.values()].map((r) => r.element)) : 'Assigned by DHCP');
      }
      for (const a of vm.addresses) rows.get(a.address)?.show(a);
    },
  };
}

function addressRow(id: number, first: VmAddress, watcher: Watcher, refresh: () => void) {
  const { address, family } = first;
  let current = first;
  /** A request or its job under way: its buttons wait for it. */
  let pending = false;
  const key = `rdns-${address.replace(/[^0-9a-z]/gi, '-')}`;
  const shown = h('span', { class: 'reverse-dns' });
  const status = notice();
  const problem = notice('error');
  problem.id = `${key}-problem`;
  const input = h('input', { name: 'hostname', id: `${key}-name`, required: true, maxlength: 253, autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off', 'aria-describedby': `${key}-hint ${key}-problem` });
  const save = h('button', { type: 'submit', 'aria-label': `Save reverse DNS of ${address}` }, 'Save');
  const remove = h('button', { type: 'button', class: 'danger', 'aria-label': `Remove reverse DNS of ${address}` }, 'Remove');
  const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
  const form = h('form', { class: 'inline card reverse-dns-form', id: `${key}-form`, hidden: true, 'aria-label': `Reverse DNS of ${address}` },
    field('Host name', input),
    h('div', { class: 'actions' }, save, remove, cancel),
    h('p', { class: 'hint full', id: `${key}-hint` }, `A full host name, like mail.example.com, that points back to ${address} (${RECORDS[family]}).`),
    problem);
  const edit = h('button', { type: 'button', class: 'small secondary', 'aria-expanded': 'false', 'aria-controls': form.id, 'aria-label': `Edit reverse DNS of ${address}` }, 'Edit reverse DNS');

  const open = (opened: boolean) => {
    form.hidden = !opened;
    edit.setAttribute('aria-expanded', String(opened));
    if (!opened) return;
    input.value = current.reverse_dns ?? '';
    say(problem, '');
    input.focus();
  };
  const drawButtons = () => {
    save.disabled = remove.disabled = pending;
    remove.hidden = !current.reverse_dns;
  };

  /** Sets the name, or removes it (`null`); a refusal keeps the form as it is, with the reason. */
  const send = async (hostname: string | null) => {
    pending = true;
    drawButtons();
    say(problem, '');
    const params = { path: { id, address }, header: { 'Idempotency-Key': idempotencyKey() } };
    const path = '/vms/{id}/addresses/{address}/reverse-dns';
    try {
      const receipt = await unwrap(hostname === null ? api.DELETE(path, { params }) : api.PUT(path, { params, body: { hostname } }));
      say(status, hostname === null ? `Removing the reverse DNS of ${address}…` : `Pointing the reverse DNS of ${address} at ${hostname}…`, 'info');
      const what = `${hostname === null ? 'Removing' : 'Setting'} the reverse DNS of ${address}`;
      watcher.watch(receipt.job_id, (job) => {
        const [text, kind] = outcome(job, hostname === null ? `Reverse DNS of ${address} removed.` : `Reverse DNS of ${address} set.`, what);
        pending = false;
        drawButtons();
        if (kind === 'ok') {
          say(status, text, 'ok');
          open(false);
        } else {
          say(status, '');
          say(problem, text);
        }
        refresh();
      });
    } catch (err) {
      // Not a host name, or not one that points back here (422); not possible now (409).
      pending = false;
      drawButtons();
      say(problem, explain(err));
      input.focus();
    }
  };

  edit.addEventListener('click', () => open(form.hidden));
  cancel.addEventListener('click', () => { open(false); edit.focus(); });
  remove.addEventListener('click', () => void send(null));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void send(input.value.trim());
  });

  const element = h('li', { 'data-address': address },
    h('div', { class: 'address-line' }, h('code', {}, address), h('span', { class: 'hint' }, FAMILIES[family]), shown, edit),
    status, form);
  return {
    element,
    show(a: VmAddress) {
      current = a;
      shown.textContent = a.reverse_dns ? `Reverse DNS: ${a.reverse_dns}` : 'no reverse DNS';
      edit.hidden = !a.reverse_dns_settable;
      if (!a.reverse_dns_settable && !form.hidden) open(false);
      drawButtons();
    },
  };
}
