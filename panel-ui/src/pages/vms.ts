// The customer's VM list (operators see every VM with its service).
import { api, explain, type Schemas, unwrap } from '../api';
import { badge, bytes, h, mount, notice, table } from '../dom';

/** `ssh user@host` through the tunnel, when the service has a public name. */
export function sshCommand(ssh: Schemas['SshAccess'] | null | undefined): HTMLElement | string {
  if (!ssh) return '';
  const proxy = ssh.proxy_command ? `-o ProxyCommand="${ssh.proxy_command}" ` : '';
  const command = `ssh ${proxy}${ssh.user}@${ssh.host}`;
  const copy = h('button', { type: 'button', class: 'small secondary', 'aria-label': `Copy ${command}` }, 'Copy');
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(command);
      copy.textContent = 'Copied';
    } catch {
      copy.textContent = 'Select and copy';
    }
  });
  return h('span', { class: 'ssh' }, h('code', {}, command), copy);
}

export async function vmListPage(): Promise<void> {
  const status = notice('info', 'Loading…');
  mount(h('h1', {}, 'My VMs'), status);
  try {
    const answer = await unwrap(api.GET('/vms'));
    // Operators get every VM on the clusters (and which clusters did not answer): the list shows
    // those with a service. A customer gets their own.
    const admin = 'unreachable' in answer;
    const vms: ListedVm[] = admin ? answer.vms.flatMap((vm) => (vm.service ? [fromOperatorView(vm, vm.service)] : [])) : answer.vms;
    status.hidden = true;
    if (vms.length === 0) {
      mount(h('h1', {}, 'My VMs'), h('p', {}, 'You have no VMs yet. ', h('a', { href: '/order' }, 'Order one.')));
      return;
    }
    const rows = vms.map((vm) => [
      h('a', { href: `/vms/${vm.id}`, class: 'vm-link' }, vm.name),
      badge(vm.state),
      vm.plan ?? '',
      badge(vm.power),
      [vm.cores ? `${vm.cores} vCPU` : '', bytes(vm.memory_bytes)].filter(Boolean).join(', '),
      sshCommand(vm.ssh),
    ]);
    mount(h('h1', {}, admin ? 'All VMs with a service' : 'My VMs'), table(['Name', 'State', 'Plan', 'Power', 'Size', 'SSH'], rows));
  } catch (err) {
    mount(h('h1', {}, 'My VMs'), notice('error', explain(err)));
  }
}

/** A row of the list: the list offers no actions and shows no addresses, so operators' rows carry neither. */
type ListedVm = Omit<Schemas['CustomerVm'], 'actions' | 'addresses'>;

/** An operator's row: the service, with the power and size the cluster reports. */
function fromOperatorView(vm: Schemas['OperatorVm'], service: Schemas['Service']): ListedVm {
  return {
    id: service.id, name: service.name, state: service.state, plan: service.plan, power: vm.status ?? 'unknown',
    cores: vm.cores, memory_bytes: vm.memory_bytes, disk_bytes: vm.disk_bytes, ssh: vm.ssh,
  };
}
