// Entry point: who is signed in, the navigation, and a small path router over the pages.
import './style.css';
import { api, ApiError, onForbidden, onSessionEnded, pageChanged, type Schemas, unwrap } from './api';
import { h, mount, notice } from './dom';
import { loginPage } from './pages/login';
import { vmListPage } from './pages/vms';
import { vmPage } from './pages/vm';
import { consolePage, stopConsole } from './pages/console';
import { adminObjectPage, adminPage, ADMIN_SECTIONS } from './pages/admin';
import { orderPage } from './pages/order';
import { accountPage, activityPage, secondFactorsPage } from './pages/account';
import { SSH_KEYS_PATH, sshKeysPage } from './pages/ssh-keys';
import { stopVmPage } from './pages/vm';

let me: Schemas['User'] | null = null;
/** The daemon requires this operator to enrol a second factor before anything else. */
let mustEnrol = false;

export function currentUser(): Schemas['User'] | null {
  return me;
}

/** Whether the signed-in operator must enrol a second factor before anything else. */
export function mustEnrolSecondFactor(): boolean {
  return me !== null && mustEnrol;
}

/** Where a session that must enrol a second factor is sent, whatever path it opens. */
export const ENROL_PATH = '/account/second-factors';

/** `next` from a query, if it is a path of the panel itself (never a link off-site), else `/vms`. */
export function panelPath(next: string | null): string {
  const path = next ?? '';
  return /^\/[a-z0-9/-]*$/i.test(path) && !path.startsWith('//') && path !== '/login' ? path : '/vms';
}

/** Moves to a panel path without a page load. */
export function go(path: string): void {
  history.pushState(null, '', path);
  void navigate();
}

/**
 * Shows the page for the current path, then does what a page load would: the title names the
 * page, and focus, which the old page's link took away with it, starts at the new heading (where a
 * screen reader announces it) unless the page put it somewhere itself.
 */
async function navigate(): Promise<void> {
  await route();
  const heading = document.querySelector<HTMLElement>('#main h1');
  document.title = heading?.textContent ? `${heading.textContent} — Porthole` : 'Porthole';
  const focused = document.activeElement;
  if (heading && (!focused || focused === document.body || !focused.isConnected)) heading.focus();
}

// A session that ends under an open page leads to the sign-in form, which says so and comes back
// to the page afterwards. The form follows once whoami has confirmed it (a 401 can also be a
// refused code under a live session: a wrong code confirming an authenticator app), so the
// request that found out fails first, and whatever its page shows of that is replaced.
let checkingSession = false;
onSessionEnded(() => {
  if (!me || checkingSession) return;
  checkingSession = true;
  void (async () => {
    try {
      const { response } = await api.GET('/whoami');
      if (response.status !== 401 || !me) return;
    } catch {
      return;
    } finally {
      checkingSession = false;
    }
    me = null;
    const back = location.pathname + location.search;
    history.replaceState(null, '', `/login?expired=1&next=${encodeURIComponent(back)}`);
    await navigate();
  })();
});

// A refusal can mean that this operator must now enrol a second factor (the policy changed under
// the session): whoami says so, and the panel then asks for one.
onForbidden(() => {
  if (me?.role !== 'admin' || mustEnrol) return;
  void (async () => {
    try {
      await loadMe();
    } catch {
      return;
    }
    if (!me || !mustEnrol) return;
    history.replaceState(null, '', enrolUrl(location.pathname));
    await navigate();
  })();
});

function enrolUrl(next: string): string {
  return `${ENROL_PATH}?next=${encodeURIComponent(next)}`;
}

async function loadMe(): Promise<void> {
  try {
    const who = await unwrap(api.GET('/whoami'));
    me = who.user;
    mustEnrol = who.must_enrol_second_factor;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) me = null;
    else throw err;
  }
}

export async function signedIn(): Promise<void> {
  await loadMe();
  renderNav();
}

function link(href: string, label: string): HTMLElement {
  const current = location.pathname === href || (href !== '/' && location.pathname.startsWith(href + '/'));
  return h('a', { href, 'aria-current': current ? 'page' : undefined }, label);
}

function renderNav(): void {
  const top = document.getElementById('top') as HTMLElement;
  top.replaceChildren();
  const brand = h('a', { class: 'brand', href: '/' }, 'Porthole');
  if (!me) {
    top.append(h('nav', { 'aria-label': 'Main' }, brand));
    return;
  }
  // Until the required second factor is enrolled, there is nowhere else to go.
  const links = mustEnrol ? [] : [link('/vms', 'My VMs'), link('/order', 'Order'), link('/account', 'Account')];
  if (me.role === 'admin' && !mustEnrol) {
    links.push(...ADMIN_SECTIONS.map(([slug, label]) => link(`/admin/${slug}`, label)));
  }
  const signOut = h('button', { type: 'button', class: 'link', onclick: () => void logout() }, 'Sign out');
  top.append(
    h('nav', { 'aria-label': 'Main' }, brand, h('div', { class: 'links' }, ...links)),
    h('div', { class: 'who' }, h('span', {}, `${me.username} (${me.role === 'admin' ? 'operator' : 'customer'})`), signOut),
  );
}

async function logout(): Promise<void> {
  try {
    await unwrap(api.POST('/auth/logout'));
  } finally {
    me = null;
    mustEnrol = false;
    go('/login');
  }
}

async function route(): Promise<void> {
  pageChanged();
  stopConsole();
  stopVmPage();
  renderNav();
  const path = location.pathname;
  if (!me && path !== '/login') {
    history.replaceState(null, '', `/login?next=${encodeURIComponent(path)}`);
    return route();
  }
  if (me && mustEnrol && path !== ENROL_PATH && path !== '/login') {
    history.replaceState(null, '', enrolUrl(path));
    return route();
  }
  if (path === '/login') return loginPage();
  if (path === '/' || path === '/vms') return vmListPage();
  if (path === '/order') return orderPage();
  if (path === '/account') return accountPage();
  if (path === '/account/activity') return activityPage();
  if (path === SSH_KEYS_PATH) return sshKeysPage();
  if (path === ENROL_PATH) return secondFactorsPage();
  let m = path.match(/^\/vms\/(\d+)$/);
  if (m) return vmPage(Number(m[1]));
  m = path.match(/^\/vms\/(\d+)\/(console|terminal)$/);
  if (m) return consolePage(Number(m[1]), m[2] === 'console' ? 'vnc' : 'term');
  m = path.match(/^\/admin\/([a-z-]+)(?:\/(\d+))?$/);
  if (m) {
    if (me?.role !== 'admin') {
      mount(h('h1', {}, 'Operators only'), notice('error', 'This page is for operators only. You have been signed in as a customer.'), h('p', {}, h('a', { href: '/vms' }, 'Back to my VMs')));
      document.body.dataset.forbidden = 'true';
      return;
    }
    return m[2] ? adminObjectPage(m[1], Number(m[2])) : adminPage(m[1]);
  }
  mount(h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '/vms' }, 'Back to my VMs')));
}

// Same-origin links route in place; modified clicks keep the browser's behaviour.
document.addEventListener('click', (event) => {
  const a = (event.target as Element | null)?.closest?.('a');
  if (!a || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  const href = a.getAttribute('href');
  if (!href || !href.startsWith('/') || a.target) return;
  event.preventDefault();
  go(href);
});
window.addEventListener('popstate', () => void navigate());

async function start(): Promise<void> {
  try {
    await loadMe();
  } catch {
    mount(h('h1', {}, 'Porthole'), notice('error', 'The panel cannot reach the server.'));
    return;
  }
  await navigate();
}

void start();
