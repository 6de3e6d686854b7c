// The customer's VM list (operators see every VM with its service).
import { api, CustomerVm, explain, SshAccess } from '../api';
import { badge, bytes, h, mount, notice, table } from '../dom';
import { currentUser } from '../main';

/** `ssh user@host` through the tunnel, when the service has a public name. */
export function sshCommand(ssh: SshAccess | null | undefined): HTMLElement | string {
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
    const answer = await api<{ vms: unknown[] }>('GET', '/vms');
    const admin = currentUser()?.role === 'admin';
    const vms: ListedVm[] = admin ? (answer.vms as AdminVm[]).filter((v) => v.service).map(fromAdmin) : (answer.vms as CustomerVm[]);
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

interface AdminVm {
  name?: string;
  status?: string;
  cores?: number;
  memory_bytes?: number;
  service: { id: number; name: string; state: string; plan: string | null } | null;
  ssh: SshAccess | null;
}

/** A row of the list: the list offers no actions, so operators' rows carry none. */
type ListedVm = Omit<CustomerVm, 'actions'>;

function fromAdmin(vm: AdminVm): ListedVm {
  const s = vm.service!;
  return {
    id: s.id, name: s.name, state: s.state, plan: s.plan, power: vm.status ?? 'unknown',
    cores: vm.cores ?? null, memory_bytes: vm.memory_bytes ?? null, disk_bytes: null, ssh: vm.ssh,
  };
}
