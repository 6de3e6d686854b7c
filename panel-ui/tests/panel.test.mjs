// Browser tests of the web panel in Debian's Chromium against `porthole demo` (daemon +
// Proxmox simulator). Screenshots are kept in panel-ui/test-results/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { overflow, shot, signIn, usePanel, waitFor } from './harness.mjs';

// Every page of every test is held to the daemon's Content-Security-Policy: a violation fails the
// test that caused it.
const { demo, newPage, customerPage } = usePanel();

test('a customer signs in with the keyboard and sees their VMs, at 1280 and 390 px', async () => {
  for (const width of [1280, 390]) {
    const page = await customerPage('alice', { width, height: 844 });
    await page.getByRole('link', { name: 'alice-web' }).waitFor();
    assert.equal(await page.getByRole('link', { name: 'alice-db' }).count(), 1);
    assert.equal(await page.getByRole('link', { name: 'bob-lab' }).count(), 0);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is wider than ${width} px by ${overflow} px`);
    await shot(page, `vm-list-${width}`, { fullPage: true });
    await page.context().close();
  }
});

/** Presses Tab until the focused element satisfies `test` (run in the page with `arg`). */
async function tabTo(page, what, test, arg) {
  for (let i = 0; i < 60; i += 1) {
    await page.keyboard.press('Tab');
    if (await page.evaluate(test, arg)) return;
  }
  throw new Error(`${what} cannot be reached with Tab`);
}
const labelled = (label) => document.activeElement?.labels?.[0]?.textContent?.includes(label) ?? false;
const named = (name) => document.activeElement?.textContent?.trim() === name;

/** How many light pixels `locator` shows on screen (decoded in a blank page, outside the CSP). */
async function litPixels(page, locator) {
  const png = (await locator.screenshot()).toString('base64');
  const blank = await page.context().newPage();
  const lit = await blank.evaluate(async (data) => {
    const image = new Image();
    image.src = `data:image/png;base64,${data}`;
    await image.decode();
    const canvas = document.createElement('canvas');
    [canvas.width, canvas.height] = [image.width, image.height];
    const context = canvas.getContext('2d');
    context.drawImage(image, 0, 0);
    const pixels = context.getImageData(0, 0, image.width, image.height).data;
    let count = 0;
    for (let i = 0; i < pixels.length; i += 4) if (pixels[i] + pixels[i + 1] + pixels[i + 2] > 384) count += 1;
    return count;
  }, png);
  await blank.close();
  return lit;
}

test('each page names itself in the title and starts focus at its heading', async () => {
  const page = await customerPage();
  // The heading can be drawn a moment before the title is set.
  await waitFor(async () => (await page.title()) === 'My VMs — Porthole', 'the title');
  await page.getByRole('link', { name: 'alice-web' }).click();
  await page.locator('#vm-state').waitFor();
  await waitFor(async () => (await page.title()) === 'alice-web — Porthole', 'the title');
  assert.deepEqual(await page.evaluate(() => [document.activeElement?.tagName, document.activeElement?.textContent]), ['H1', 'alice-web']);
  await page.context().close();
});

test('sign-in and the VM list work with the keyboard alone', async () => {
  const page = await newPage();
  await page.goto(`${demo.url}/login`);
  const account = demo.account('alice');
  await tabTo(page, 'the username field', labelled, 'Username');
  await page.keyboard.type(account.username);
  await tabTo(page, 'the password field', labelled, 'Password');
  await page.keyboard.type(account.password);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: /VMs/ }).waitFor();
  await tabTo(page, 'the first VM', named, 'alice-web');
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'alice-web' }).waitFor();
  await page.context().close();
});

/** The VNC canvas' pixels, to compare screens. */
async function canvasPixels(page) {
  return page.evaluate(() => {
    const canvas = document.querySelector('#console-screen canvas');
    const ctx = canvas.getContext('2d');
    return Array.from(ctx.getImageData(0, 0, canvas.width, canvas.height).data.filter((_, i) => i % 4 === 0)).join(',');
  });
}

test('the VNC console shows the VM screen, which changes after typing', async () => {
  const page = await customerPage();
  await page.getByRole('link', { name: 'alice-web' }).click();
  await page.locator('#open-console').click();
  await page.locator('#console-screen[data-first-frame="drawn"]').waitFor({ timeout: 20_000 });
  await page.waitForTimeout(300);
  const before = await canvasPixels(page);
  await shot(page, 'vnc-before-typing');
  await page.locator('#console-screen canvas').click();
  await page.keyboard.type('root', { delay: 30 });
  await waitFor(async () => (await canvasPixels(page)) !== before, 'the screen to change after typing', 10_000);
  await page.waitForTimeout(300);
  await shot(page, 'vnc-after-typing');
  assert.equal(await page.locator('#ctrl-alt-del').isEnabled(), true);
  await page.context().close();
});

test('on a phone the console shows the VM at its own size, fits on request, and the Keyboard button types into it', async () => {
  const page = await customerPage('alice', { width: 390, height: 844 });
  await page.goto(`${demo.url}/vms/${demo.account('alice').vms[0]}/console`);
  await page.locator('#console-screen[data-first-frame="drawn"]').waitFor({ timeout: 20_000 });
  // Canvas pixels per CSS pixel: 1 at the VM's own size, more when scaled down to fit.
  const scale = () => page.evaluate(() => {
    const canvas = document.querySelector('#console-screen canvas');
    return canvas.width / canvas.clientWidth;
  });
  assert.ok(Math.abs(await scale() - 1) < 0.05, `scaled by ${await scale()} on a phone`);
  await page.locator('#zoom').click();
  await waitFor(async () => (await scale()) > 1.5, 'the screen to fit the frame');
  await shot(page, 'vnc-phone-fitted');
  await page.locator('#keyboard').click();
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'vnc-keys');
  const before = await canvasPixels(page);
  await page.keyboard.type('root', { delay: 30 });
  await waitFor(async () => (await canvasPixels(page)) !== before, 'the screen to change after typing', 10_000);
  assert.equal(await page.locator('#vnc-keys').inputValue(), '', 'what is typed goes to the VM, not the field');
  assert.ok(await overflow(page) <= 0, 'the console page is wider than 390 px');
  await page.context().close();
});

test('a console the node drops reconnects by itself with a new token', async () => {
  const page = await customerPage();
  const id = demo.account('alice').vms[0];
  await page.goto(`${demo.url}/vms/${id}/console`);
  await page.locator('#console-screen[data-first-frame="drawn"]').waitFor({ timeout: 20_000 });
  const opened = (await demo.adminApi('GET', '/console/sessions')).body.counters.opened;
  const vmid = (await demo.adminApi('GET', `/vms/${id}`)).body.service.vmid;
  const dropped = await fetch(`${demo.credentials.simulator_control_url}vms/${vmid}/consoles`, { method: 'DELETE' });
  assert.equal(dropped.status, 200);
  await page.locator('#console-screen[data-close-code="4010"]').waitFor({ timeout: 10_000 });
  await page.locator('#console-screen[data-state="open"]').waitFor({ timeout: 20_000 });
  const after = (await demo.adminApi('GET', '/console/sessions')).body;
  assert.equal(after.counters.opened, opened + 1, JSON.stringify(after.counters));
  await shot(page, 'vnc-reconnected');
  await page.context().close();
});

test('the terminal echoes a typed line', async () => {
  const page = await customerPage();
  const id = demo.account('alice').vms[0];
  await page.goto(`${demo.url}/vms/${id}/terminal`);
  await page.locator('#console-screen[data-state="open"]').waitFor({ timeout: 20_000 });
  await page.locator('#console-screen .xterm').click();
  await waitFor(async () => /root@/.test(await page.locator('.xterm-rows').innerText()), 'the prompt', 10_000);
  await page.keyboard.type('echo hello-from-chromium\n', { delay: 10 });
  const text = await waitFor(async () => {
    const rows = await page.locator('.xterm-rows').innerText();
    return (rows.match(/hello-from-chromium/g) ?? []).length >= 2 ? rows : null;
  }, 'the echoed line', 10_000);
  assert.match(text, /\nhello-from-chromium\s*\n/);
  // Underscores sit below the baseline: the rows must be tall enough to show them.
  await page.keyboard.type('echo ________\n', { delay: 10 });
  const row = page.locator('.xterm-rows > div').filter({ hasText: /^_+\s*$/ });
  await row.waitFor();
  assert.ok(await litPixels(page, row) > 20, 'the underscores are not drawn');
  // xterm.js styles itself at runtime (theme, cell size, scrollbar) and paints a selection in
  // 24-bit colour: all of it has to work under the strict CSP. Its rows are laid out by those
  // runtime rules: spans are inline-block and the rows container has the theme's font.
  const layout = await page.evaluate(() => {
    const span = document.querySelector('.xterm-rows span');
    const rows = document.querySelector('.xterm-rows');
    return { display: span && getComputedStyle(span).display, font: getComputedStyle(rows).fontSize, pointer: getComputedStyle(rows).pointerEvents };
  });
  assert.deepEqual(layout, { display: 'inline-block', font: '14px', pointer: 'none' });
  // Tab is the shell's; a keyboard user leaves the terminal with Shift+Esc.
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.closest('.xterm') !== null), true);
  await page.keyboard.press('Shift+Escape');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'paste');
  // The rows let pointer events through to xterm's screen, which selects the word under a double click.
  const word = await page.locator('.xterm-rows').getByText('hello-from-chromium').last().boundingBox();
  await page.mouse.dblclick(word.x + 10, word.y + word.height / 2);
  const selected = await waitFor(() => page.evaluate(() => {
    const cells = [...document.querySelectorAll('.xterm-rows span')].filter((s) => s.style.backgroundColor);
    return cells.length ? cells.map((s) => s.textContent).join('') : null;
  }), 'the selection to be painted', 5_000);
  assert.match(selected, /hello/);
  await page.waitForTimeout(300);
  await shot(page, 'terminal-echo');
  // Leaving the page disposes of the terminal, and its stylesheets with it.
  assert.ok(await page.evaluate(() => document.adoptedStyleSheets.length) > 0);
  await page.getByRole('link', { name: /← / }).click();
  await page.locator('#vm-state').waitFor();
  assert.equal(await page.evaluate(() => document.adoptedStyleSheets.length), 0);
  await page.context().close();
});

test('a stopped VM offers Start and no console, and its console page says why once, at 1280 and 390 px', async () => {
  const id = demo.account('alice').vms[1];
  for (const viewport of [{ width: 1280, height: 900 }, { width: 390, height: 844 }]) {
    const page = await customerPage('alice', viewport);
    await page.goto(`${demo.url}/vms/${id}`);
    await page.locator('#vm-power').getByText('stopped').waitFor();
    const enabled = async (action) => !(await page.locator(`button[data-action="${action}"]`).isDisabled());
    assert.deepEqual(
      [await enabled('start'), await enabled('shutdown'), await enabled('reboot'), await enabled('stop')],
      [true, false, false, false],
    );
    assert.equal(await page.locator('#open-console').getAttribute('aria-disabled'), 'true');
    assert.equal(await page.locator('#open-terminal').getAttribute('aria-disabled'), 'true');
    assert.match(await page.locator('#console-note').innerText(), /not running/);
    await shot(page, `stopped-vm-${viewport.width}`);
    await page.context().close();
  }

  // Reached by its address anyway, the console explains and does not retry what cannot work.
  const page = await customerPage();
  await page.goto(`${demo.url}/vms/${id}/console`);
  await page.getByText(/not running\. Start it/).waitFor();
  await page.waitForTimeout(3000);
  assert.equal(await page.getByText(/Reconnecting/).count(), 0);
  const audit = async (action) => (await demo.adminApi('GET', `/audit?action=${action}`)).body
    .filter((entry) => entry.target === `service:${id}`);
  assert.equal((await audit('console.refused')).length, 1);
  assert.equal((await audit('console.open')).length, 0);
  await page.context().close();
});

test("a suspended VM's console is disabled and the server refuses a token", async () => {
  const id = demo.account('alice').vms[1];
  const suspended = await demo.adminApi('POST', `/services/${id}/suspend`);
  assert.ok([200, 202].includes(suspended.status), JSON.stringify(suspended));
  await waitFor(async () => (await demo.adminApi('GET', `/services/${id}`)).body.service.state === 'suspended', 'the suspension', 30_000);
  const page = await customerPage();
  await page.goto(`${demo.url}/vms/${id}`);
  await page.locator('#vm-state').getByText('suspended').waitFor();
  assert.equal(await page.locator('#open-console').getAttribute('aria-disabled'), 'true');
  assert.match(await page.locator('#console-note').innerText(), /suspended/);
  const refused = await page.evaluate(async (vm) => {
    const r = await fetch(`/api/v1/vms/${vm}/console`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"kind":"vnc"}' });
    return { status: r.status, body: await r.json() };
  }, id);
  assert.equal(refused.status, 409);
  assert.match(refused.body.error, /suspended/);
  await page.goto(`${demo.url}/vms/${id}/console`);
  await page.getByText(/suspended, so its console is unavailable/).waitFor();
  await shot(page, 'suspended-console');
  await page.context().close();
});

test('a session that ends under an open page leads to the sign-in form, and back to the page', async () => {
  const id = demo.account('alice').vms[0];
  const page = await customerPage();
  await page.goto(`${demo.url}/vms/${id}`);
  await page.locator('#vm-state').waitFor();
  // The session ends on the server (as at expiry); the page finds out at its next refresh.
  await page.evaluate(() => fetch('/api/v1/auth/logout', { method: 'POST' }));
  await page.getByText('Your session has ended. Please sign in again.').waitFor({ timeout: 10_000 });
  assert.equal(await page.getByRole('button', { name: 'Sign out' }).count(), 0, 'the header still shows the user');
  await page.getByLabel('Username').fill('alice');
  await page.getByLabel('Password').fill(demo.account('alice').password);
  await page.keyboard.press('Enter');
  await page.locator('#vm-state').waitFor();
  assert.equal(new URL(page.url()).pathname, `/vms/${id}`);
  await page.context().close();
});

test('a page left while it loads never draws over the page that follows', async () => {
  const page = await newPage();
  // The VM list answers slowly; the person moves on before it does.
  let answered = null;
  await page.route('**/api/v1/vms', async (route) => {
    await new Promise((r) => setTimeout(r, 1500));
    await route.continue();
    answered = Date.now();
  });
  await signIn(page, demo.url, demo.account('alice'));
  await page.getByRole('link', { name: 'Account', exact: true }).click();
  await page.getByRole('heading', { name: 'Account', level: 1 }).waitFor();
  await waitFor(() => answered !== null, 'the slow answer');
  await page.waitForTimeout(300);
  assert.deepEqual(await page.locator('main h1').allInnerTexts(), ['Account']);
  assert.equal(new URL(page.url()).pathname, '/account');
  await page.context().close();
});

test('the audit log filters by family, names its actors and wraps its details, and every table header says what its column is, at 1280 and 390 px', async () => {
  // At least one console entry by alice: a console asked of her stopped VM is refused.
  const alice = await customerPage();
  await alice.evaluate((vm) => fetch(`/api/v1/vms/${vm}/console`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"kind":"vnc"}' }), demo.account('alice').vms[1]);
  await alice.context().close();
  for (const viewport of [{ width: 1280, height: 900 }, { width: 390, height: 844 }]) {
    const page = await newPage(viewport);
    await signIn(page, demo.url, demo.account('admin'));
    await page.goto(`${demo.url}/admin/audit`);
    await page.getByLabel('Action').fill('console');
    await page.keyboard.press('Enter');
    const rows = page.getByRole('table', { name: 'Audit entries' }).locator('tbody tr');
    await rows.first().waitFor();
    const actions = await rows.locator('td:nth-child(3)').allInnerTexts();
    assert.ok(actions.every((a) => a.startsWith('console.')), actions.join(', '));
    const actors = await rows.locator('td:nth-child(2)').allInnerTexts();
    assert.ok(actors.includes('alice') && actors.every((a) => !a.startsWith('user:')), actors.join(', '));
    assert.equal(await page.locator('td code').count(), 0, 'no raw JSON');
    assert.ok(await overflow(page) <= 0, `the audit page is wider than ${viewport.width} px`);
    await shot(page, `audit-${viewport.width}`, { fullPage: true });
    for (const section of ['audit', 'plugins', 'customers', 'services', 'consoles', 'nodes', 'plans']) {
      await page.goto(`${demo.url}/admin/${section}`);
      await page.locator('h1').waitFor();
      await page.waitForLoadState('networkidle');
      const empty = await page.locator('th').evaluateAll((ths) => ths.filter((th) => !th.textContent?.trim()).length);
      assert.equal(empty, 0, `an empty table header on ${section}`);
    }
    await page.context().close();
  }
});

test('an operator creates a plan', async () => {
  const page = await newPage();
  await signIn(page, demo.url, demo.account('admin'));
  await page.getByRole('link', { name: 'Plans' }).click();
  await page.getByLabel('Plan name').fill('tiny-ui');
  await page.getByLabel('vCPUs').fill('1');
  await page.getByLabel('Memory (MiB)').fill('512');
  await page.getByLabel('Disk (GiB)').fill('5');
  await page.getByLabel('Node group').fill('pve1, pve9');
  await page.getByRole('button', { name: 'Save plan' }).click();
  await page.getByText(/Node "pve9" is not a node of cluster/).waitFor();
  await page.getByLabel('Node group').fill('pve1, pve2');
  // The browser checks names itself: the pattern is a valid expression for Chromium (v flag).
  const mismatch = async (label, text) => {
    await page.getByLabel(label).fill(text);
    return page.getByLabel(label).evaluate((input) => input.validity.patternMismatch);
  };
  assert.equal(await mismatch('Plan name', 'Tiny_UI'), true);
  assert.equal(await mismatch('Plan name', 'tiny-ui'), false);
  await page.getByRole('button', { name: 'Save plan' }).click();
  await page.getByText('Plan tiny-ui saved.').waitFor();
  await page.getByRole('cell', { name: 'tiny-ui' }).waitFor();
  const plans = await demo.adminApi('GET', '/plans');
  const plan = plans.body.find((p) => p.name === 'tiny-ui');
  assert.deepEqual([plan.cores, plan.memory_mib, plan.disk_gib, plan.nodes], [1, 512, 5, ['pve1', 'pve2']]);
  await shot(page, 'operator-plans', { fullPage: true });
  for (const section of ['nodes', 'plugins', 'audit', 'consoles', 'customers', 'services']) {
    await page.goto(`${demo.url}/admin/${section}`);
    await page.waitForFunction(() => document.querySelector('main h1') && !document.querySelector('main').textContent.includes('Loading…'));
    assert.equal(await page.locator('.notice.error').count(), 0, `${section} shows an error`);
    await shot(page, `operator-${section}`, { fullPage: true });
  }
  await page.context().close();
});

test('a customer cannot reach operator pages or API', async () => {
  const page = await customerPage();
  assert.equal(await page.getByRole('link', { name: 'Plugins' }).count(), 0);
  await page.goto(`${demo.url}/admin/plugins`);
  await page.getByRole('heading', { name: 'Operators only' }).waitFor();
  const statuses = await page.evaluate(async () => {
    const out = {};
    for (const path of ['/plugins', '/users', '/nodes', '/audit', '/console/sessions', '/services', '/users/1/quota']) out[path] = (await fetch(`/api/v1${path}`)).status;
    out['PUT /plans/x'] = (await fetch('/api/v1/plans/x', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"name":"x","cores":1,"memory_mib":1,"disk_gib":1,"templates":[]}' })).status;
    return out;
  });
  for (const [path, status] of Object.entries(statuses)) assert.equal(status, 403, `${path} answered ${status}`);
  await shot(page, 'customer-forbidden');
  await page.context().close();
});

test('a customer orders the plan an operator created, and the operator finds it among the services', async () => {
  // The operator test above creates `tiny-ui` through the panel; alone, this test makes it itself.
  if (!(await demo.adminApi('GET', '/plans')).body.some((p) => p.name === 'tiny-ui')) {
    const templates = (await demo.adminApi('GET', '/templates')).body;
    assert.ok(templates.length > 0, 'the demo has no templates to order from');
    await demo.adminApi('PUT', '/plans/tiny-ui', { name: 'tiny-ui', cores: 1, memory_mib: 512, disk_gib: 5, templates: templates.map((t) => t.name), nodes: [] });
  }
  const page = await customerPage('bob');
  await page.getByRole('link', { name: 'Order' }).click();
  await page.getByLabel('Plan').selectOption('tiny-ui');
  await page.getByLabel('Hostname').fill('UI_order-');
  assert.equal(await page.getByLabel('Hostname').evaluate((input) => input.validity.patternMismatch), true);
  await page.getByLabel('Hostname').fill('ui-order');
  assert.equal(await page.getByLabel('Hostname').evaluate((input) => input.validity.patternMismatch), false);
  await page.getByRole('button', { name: 'Order' }).click();
  await page.waitForURL(/\/vms\/\d+$/);
  const id = Number(new URL(page.url()).pathname.split('/').pop());
  await page.locator('#progress li').first().waitFor({ timeout: 30_000 });
  await waitFor(async () => (await page.locator('#vm-state').innerText()).includes('active'), 'the order to become active', 90_000);
  const steps = await page.locator('#progress li').allInnerTexts();
  assert.ok(steps.length >= 2, `progress shows ${steps.length} steps`);
  // The tunnel gave the VM a public name: the page offers the SSH command for it.
  const ssh = page.locator('#vm-ssh code');
  await ssh.waitFor();
  assert.match(await ssh.innerText(), /^ssh -o ProxyCommand="cloudflared access ssh --hostname %h" debian@ui-order\.[a-z0-9.-]+$/);
  await shot(page, 'order-progress', { fullPage: true });
  await page.context().close();

  const operator = await newPage();
  await signIn(operator, demo.url, demo.account('admin'));
  await operator.getByRole('link', { name: 'Services' }).click();
  const row = operator.getByRole('row').filter({ has: operator.getByRole('link', { name: 'ui-order' }) });
  await row.waitFor();
  const cells = await row.getByRole('cell').allInnerTexts();
  assert.deepEqual(cells.slice(0, 6).map((c) => c.trim()), ['ui-order', 'bob', 'tiny-ui', 'active', 'ui-order', 'provision succeeded']);
  await shot(operator, 'operator-services-order', { fullPage: true });
  await operator.getByRole('link', { name: 'ui-order' }).click();
  await operator.getByRole('heading', { name: 'ui-order' }).waitFor();
  assert.equal(new URL(operator.url()).pathname, `/admin/services/${id}`);
  const job = operator.getByRole('table', { name: 'Jobs, newest first' }).getByRole('row').nth(1);
  assert.deepEqual((await job.getByRole('cell').allInnerTexts()).slice(1, 3), ['provision', 'succeeded']);
  assert.ok(await operator.getByRole('table', { name: 'Steps, newest first' }).getByRole('row').count() > 2, 'the history lists the steps');
  await shot(operator, 'operator-service-order', { fullPage: true });
  await operator.context().close();
});

test('an operator filters services, follows one to its customer and sets their quota, with the keyboard alone, at 1280 and 390 px', async () => {
  const bob = (await demo.adminApi('GET', '/users')).body.find((u) => u.username === 'bob');
  for (const [width, maxVms] of [[1280, 7], [390, 8]]) {
    const page = await newPage({ width, height: 844 });
    await signIn(page, demo.url, demo.account('admin'));
    await tabTo(page, 'the Services link', named, 'Services');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Services' }).waitFor();
    // Any state, pending, provisioning, active.
    await tabTo(page, 'the state filter', labelled, 'State');
    for (let i = 0; i < 3; i += 1) await page.keyboard.press('ArrowDown');
    await tabTo(page, 'the Filter button', named, 'Filter');
    await page.keyboard.press('Enter');
    await page.waitForURL(/\/admin\/services\?state=active$/);
    await page.locator('#services-count').getByText(/ active\.$/).waitFor();
    const states = await page.getByRole('table', { name: 'Services' }).locator('tbody tr td:nth-child(4)').allInnerTexts();
    assert.ok(states.length > 0 && states.every((t) => t.trim() === 'active'), `states shown: ${states}`);
    assert.ok(await overflow(page) <= 0, `the services page is wider than ${width} px`);
    await shot(page, `operator-services-active-${width}`, { fullPage: true });

    await tabTo(page, "bob's seeded VM", named, 'bob-lab');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'bob-lab' }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Suspend' }).count(), 1);
    assert.ok(await overflow(page) <= 0, `the service page is wider than ${width} px`);
    await shot(page, `operator-service-${width}`, { fullPage: true });

    await tabTo(page, 'the owner', named, 'bob');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'bob' }).waitFor();
    const quota = (await demo.adminApi('GET', `/users/${bob.id}/quota`)).body;
    const usage = page.getByRole('table', { name: 'Quota: usage and limits' });
    const vms = await usage.getByRole('row').filter({ hasText: 'VMs' }).getByRole('cell').allInnerTexts();
    assert.deepEqual(vms, ['VMs', String(quota.usage.vms), String(quota.limits.max_vms)]);
    const memory = await usage.getByRole('row').filter({ hasText: 'Memory' }).getByRole('cell').allInnerTexts();
    assert.deepEqual(memory, ['Memory', `${quota.usage.memory_mib} MiB`, `${quota.limits.max_memory_mib} MiB`]);
    await tabTo(page, 'the Max VMs field', labelled, 'Max VMs');
    await page.keyboard.press('ControlOrMeta+A');
    await page.keyboard.type(String(maxVms));
    await page.keyboard.press('Enter');
    await page.getByText('Quota of bob saved.').waitFor();
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'quota-status');
    assert.equal((await demo.adminApi('GET', `/users/${bob.id}/quota`)).body.limits.max_vms, maxVms);
    assert.deepEqual(await usage.getByRole('row').filter({ hasText: 'VMs' }).getByRole('cell').allInnerTexts(), ['VMs', String(quota.usage.vms), String(maxVms)]);
    assert.ok(await overflow(page) <= 0, `the customer page is wider than ${width} px`);
    await shot(page, `operator-customer-${width}`, { fullPage: true });
    // A limit below what bob already uses saves, and the page says what that means.
    await page.getByLabel('Max VMs').fill('0');
    await page.getByRole('button', { name: 'Save quota' }).click();
    await page.getByText(`Quota of bob saved, below what is in use (VM count: ${quota.usage.vms} in use, 0 allowed)`, { exact: false }).waitFor();
    await page.getByLabel('Max VMs').fill(String(maxVms));
    await page.getByRole('button', { name: 'Save quota' }).click();
    await page.getByText('Quota of bob saved.').waitFor();

    await page.goto(`${demo.url}/admin/customers`);
    const summary = page.getByRole('row').filter({ has: page.getByRole('link', { name: 'bob', exact: true }) }).getByRole('cell').nth(3);
    assert.match(await summary.innerText(), new RegExp(`VMs: ${quota.usage.vms} of ${maxVms}\n`));
    assert.ok(await overflow(page) <= 0, `the customers page is wider than ${width} px`);
    await shot(page, `operator-customers-${width}`, { fullPage: true });
    await page.context().close();
  }
});
