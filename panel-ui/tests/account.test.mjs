// Browser tests of the account pages (password, API tokens, the account's own activity) in
// Debian's Chromium against a `porthole demo` of their own. Screenshots are kept in
// panel-ui/test-results/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inPage, overflow, shot as screenshot, signIn, usePanel, waitFor } from './harness.mjs';

const { demo, newPage } = usePanel();
const shot = (page, name) => screenshot(page, name, { fullPage: true });

/** The API as the holder of `token` sees it, from outside any browser. */
async function withToken(token, method, path, body) {
  const response = await fetch(`${demo.url}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/** The cells of each body row of the table named `caption`. */
function tableRows(page, caption) {
  return page.getByRole('table', { name: caption }).locator('tbody tr').evaluateAll((rows) =>
    rows.map((row) => Array.from(row.querySelectorAll('td'), (td) => td.innerText.trim())));
}

test('a customer changes their password: a wrong current one is refused, their other session ends, and the new one signs in, at 1280 and 390 px', async () => {
  for (const width of [1280, 390]) {
    const account = { username: `carol-${width}`, password: `carol-first-${width}` };
    const created = await demo.adminApi('POST', '/users', { ...account, role: 'customer' });
    assert.equal(created.status, 201, JSON.stringify(created));
    // Signed in before the change, in another browser.
    const elsewhere = await newPage();
    await signIn(elsewhere, demo.url, account);

    const page = await newPage({ width, height: 844 });
    await signIn(page, demo.url, account);
    await page.getByRole('link', { name: 'Account', exact: true }).click();
    await page.getByRole('heading', { name: 'Account', level: 1 }).waitFor();
    const newPassword = `carol-second-${width}`;
    await page.getByLabel('Current password').fill('not-the-password');
    await page.getByLabel('New password', { exact: true }).fill(newPassword);
    await page.getByLabel('New password again').fill(newPassword);
    await page.getByRole('button', { name: 'Change password' }).click();
    await page.locator('#password-status').getByText('The current password is wrong.').waitFor();
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('name')), 'current_password');
    assert.ok(await overflow(page) <= 0, `the account page is wider than ${width} px`);
    await shot(page, `account-password-refused-${width}`);
    // The session that came with the wrong password is untouched.
    assert.equal((await inPage(elsewhere, 'GET', '/whoami')).status, 200);

    await page.getByLabel('Current password').fill(account.password);
    await page.keyboard.press('Enter');
    await page.locator('#password-status').getByText('Password changed.', { exact: false }).waitFor();
    assert.equal(await page.getByLabel('Current password').inputValue(), '', 'the form is cleared');
    // This session goes on.
    assert.equal((await inPage(page, 'GET', '/whoami')).status, 200);

    // The other one is sent to the sign-in form at its next request, where only the new password works.
    await elsewhere.getByRole('link', { name: 'Account', exact: true }).click();
    await elsewhere.getByText('Your session has ended. Please sign in again.').waitFor({ timeout: 10_000 });
    await elsewhere.getByLabel('Username').fill(account.username);
    await elsewhere.getByLabel('Password').fill(account.password);
    await elsewhere.keyboard.press('Enter');
    await elsewhere.getByText('Wrong username or password.').waitFor();
    await elsewhere.getByLabel('Password').fill(newPassword);
    await elsewhere.keyboard.press('Enter');
    await elsewhere.getByRole('heading', { name: 'Account', level: 1 }).waitFor();
    assert.equal(new URL(elsewhere.url()).pathname, '/account');
    await elsewhere.context().close();
    await page.context().close();
  }
});

test('a customer makes a read-only token that expires in 30 days: shown once, it reads, cannot order, and stops working when revoked, at 1280 and 390 px', async () => {
  for (const width of [1280, 390]) {
    const page = await newPage({ width, height: 844 });
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: demo.url });
    await signIn(page, demo.url, demo.account('alice'));
    await page.goto(`${demo.url}/account`);
    await page.getByRole('heading', { name: 'API tokens' }).waitFor();
    // The admin scope is for operators; read is the only one chosen to begin with.
    assert.equal(await page.getByRole('checkbox', { name: /^admin/ }).count(), 0);
    assert.deepEqual(await page.getByRole('checkbox').evaluateAll((boxes) => boxes.filter((b) => b.checked).map((b) => b.value)), ['read']);
    const name = `read-only-${width}`;
    await page.getByLabel('Token name').fill(name);
    await page.getByLabel('Expires after (days)').fill('30');
    await page.getByRole('button', { name: 'Create token' }).click();

    const shown = page.locator('#new-token-value');
    await shown.waitFor();
    const token = await shown.inputValue();
    assert.match(token, /^pht_/);
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'new-token-value', 'focus is on the new token');
    await page.getByText('it will not be shown again', { exact: false }).waitFor();
    await page.getByRole('button', { name: 'Copy token' }).click();
    await page.getByText('Copied.').waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), token);
    const row = (await tableRows(page, 'Your API tokens')).find((cells) => cells[0] === name);
    assert.ok(row, `${name} is listed`);
    assert.equal(row[1], 'read');
    assert.equal(row[4], 'never', 'not used yet');
    const listed = (await inPage(page, 'GET', '/tokens')).body.find((t) => t.name === name);
    assert.deepEqual(listed.scopes, ['read']);
    assert.equal(listed.expires_at - listed.created_at, 30 * 86_400);
    assert.ok(await overflow(page) <= 0, `the account page is wider than ${width} px`);
    await shot(page, `account-token-created-${width}`);

    // It reads, as alice.
    const vms = await withToken(token, 'GET', '/vms');
    assert.equal(vms.status, 200);
    assert.deepEqual(vms.body.vms.map((vm) => vm.name).sort(), ['alice-db', 'alice-web']);
    // It may not order.
    const order = await withToken(token, 'POST', '/orders', { plan: 'small', template: 'debian-12', hostname: `token-${width}`, username: 'debian' });
    assert.equal(order.status, 403);
    assert.match(order.body.error, /"orders" scope/);

    // Shown once: a new visit lists it without the secret.
    await waitFor(async () => {
      await page.reload();
      await page.getByRole('heading', { name: 'API tokens' }).waitFor();
      return (await tableRows(page, 'Your API tokens')).find((cells) => cells[0] === name)?.[4] !== 'never';
    }, 'the last use to show');
    assert.equal(await shown.count(), 0);

    await page.getByRole('button', { name: `Revoke the token ${name}` }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke token' }).click();
    await page.locator('#tokens-status').getByText(`Token “${name}” revoked.`).waitFor();
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'tokens-status');
    assert.ok(!(await tableRows(page, 'Your API tokens')).some((cells) => cells[0] === name), 'the revoked token is gone from the list');
    assert.equal((await withToken(token, 'GET', '/vms')).status, 401);
    await page.context().close();
  }

  // Operators may give a token the admin scope.
  const operator = await newPage();
  await signIn(operator, demo.url, demo.account('admin'));
  await operator.getByRole('link', { name: 'Account', exact: true }).click();
  await operator.getByRole('checkbox', { name: /^admin/ }).waitFor();
  await operator.context().close();
});

test("my activity lists my sign-ins, power actions and consoles, filters and pages them, and never shows another customer's entries, at 1280 and 390 px", async () => {
  const alice = demo.account('alice');
  const [web, db] = alice.vms;
  const page = await newPage();
  await signIn(page, demo.url, alice);
  // A power action, through the VM page.
  await page.goto(`${demo.url}/vms/${db}`);
  await page.getByRole('heading', { name: 'alice-db' }).waitFor();
  await page.getByRole('button', { name: 'Start' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Start' }).click();
  await page.getByText('Start: requested.', { exact: false }).waitFor();
  // A console, opened and closed.
  await page.goto(`${demo.url}/vms/${web}/terminal`);
  await page.locator('#console-screen[data-state="open"]').waitFor({ timeout: 20_000 });
  await page.getByRole('link', { name: '← alice-web' }).click();
  await page.getByRole('heading', { name: 'alice-web' }).waitFor();

  // Bob, meanwhile, signs in and acts on his own VM.
  const bob = await newPage();
  await signIn(bob, demo.url, demo.account('bob'));
  const bobVm = demo.account('bob').vms[0];
  const bobActions = (await inPage(bob, 'GET', `/vms/${bobVm}`)).body.actions.power;
  assert.equal((await inPage(bob, 'POST', `/vms/${bobVm}/power`, { action: bobActions[0] })).status, 202);
  const bobEntries = (await inPage(bob, 'GET', '/account/activity')).body;
  assert.ok(bobEntries.some((e) => e.action === 'vm.power'), JSON.stringify(bobEntries));
  await bob.context().close();

  for (const width of [1280, 390]) {
    const viewer = width === 1280 ? page : await newPage({ width, height: 844 });
    if (viewer !== page) await signIn(viewer, demo.url, alice);
    await viewer.getByRole('link', { name: 'Account', exact: true }).click();
    await viewer.getByRole('link', { name: 'My activity' }).click();
    await viewer.getByRole('heading', { name: 'My activity' }).waitFor();
    // The console's close is written when its connection ends.
    await waitFor(async () => {
      const rows = await tableRows(viewer, 'My activity, newest first');
      if (rows.some((cells) => cells[1] === 'Console closed')) return true;
      await viewer.reload();
      await viewer.getByRole('heading', { name: 'My activity' }).waitFor();
      return false;
    }, 'the console close in the activity');
    const rows = await tableRows(viewer, 'My activity, newest first');
    const what = rows.map((cells) => cells[1]);
    assert.ok(what.includes('Signed in'), what.join(', '));
    const power = rows.find((cells) => cells[1] === 'Power action');
    assert.deepEqual([power[2], power[4]], ['alice-db', 'Start']);
    assert.match(power[3], /^(127\.0\.0\.1|::1)$/, 'the client address');
    const opened = rows.find((cells) => cells[1] === 'Opened a console');
    assert.deepEqual([opened[2], opened[4]], ['alice-web', 'Terminal']);
    const closed = rows.find((cells) => cells[1] === 'Console closed');
    assert.match(closed[4], /^Terminal, open \d+ s, closed in the browser$/);
    // Only alice's: as many as her own API answer, none on bob's VM.
    const own = (await inPage(viewer, 'GET', '/account/activity?limit=50')).body;
    assert.equal(rows.length, own.length);
    assert.ok(!rows.some((cells) => /bob/.test(cells[2]) || cells[2] === `VM ${bobVm}`), JSON.stringify(rows));
    const bobIds = new Set(bobEntries.map((e) => e.id));
    assert.ok(!own.some((e) => bobIds.has(e.id)), 'the API answers alice with none of bob\'s entries');
    assert.ok(await overflow(viewer) <= 0, `the activity page is wider than ${width} px`);
    await shot(viewer, `account-activity-${width}`);

    // Sign-ins only.
    await viewer.getByLabel('Show').selectOption({ label: 'Sign-ins' });
    await viewer.getByRole('button', { name: 'Filter' }).click();
    await viewer.waitForURL(/\/account\/activity\?action=auth$/);
    await waitFor(async () => {
      const texts = (await tableRows(viewer, 'My activity, newest first')).map((cells) => cells[1]);
      return texts.length > 0 && texts.every((t) => t === 'Signed in' || t === 'Signed out');
    }, 'only sign-ins');
    assert.equal(await viewer.evaluate(() => document.activeElement?.id), 'activity-action');
    await viewer.context().close();
  }

  // Paging: 50 entries a page, the next page from the last one's id.
  for (let i = 0; i < 26; i += 1) {
    const made = await withToken(alice.api_token, 'POST', '/tokens', { name: `paging-${i}`, scopes: ['read'], expires_in_days: 1 });
    assert.equal(made.status, 201, JSON.stringify(made));
    assert.equal((await withToken(alice.api_token, 'DELETE', `/tokens/${made.body.metadata.id}`)).status, 204);
  }
  const viewer = await newPage({ width: 390, height: 844 });
  await signIn(viewer, demo.url, alice);
  await viewer.goto(`${demo.url}/account/activity?action=token`);
  const first = await waitFor(async () => {
    const rows = await tableRows(viewer, 'My activity, newest first');
    return rows.length === 50 ? rows : null;
  }, 'a full page');
  assert.ok(first.every((cells) => /API token/.test(cells[1])), first.map((cells) => cells[1]).join(', '));
  // Newest first: the last token made was revoked last; both were done with an API token.
  assert.deepEqual(first[0].slice(1, 3), ['Revoked an API token (with an API token)', 'API token “paging-25”']);
  assert.deepEqual(first[1].slice(1, 3), ['Created an API token (with an API token)', 'API token “paging-25”']);
  assert.match(first[1][4], /^scopes read, expires /);
  await viewer.getByRole('button', { name: 'Older' }).click();
  await viewer.waitForURL(/\/account\/activity\?action=token&before=\d+$/);
  const second = await waitFor(async () => {
    const rows = await tableRows(viewer, 'My activity, newest first');
    return rows.length > 0 && rows.length < 50 ? rows : null;
  }, 'the older page');
  assert.ok(second.length >= 2, `${second.length} older entries`);
  assert.ok(second.some((cells) => cells[2] === 'API token “paging-0”'), JSON.stringify(second));
  assert.equal(await viewer.getByRole('button', { name: 'Older' }).count(), 0, 'no page after the last');
  assert.ok(await overflow(viewer) <= 0, 'the activity page is wider than 390 px');
  await viewer.getByRole('link', { name: 'Newest' }).click();
  await viewer.waitForURL(/\/account\/activity\?action=token$/);
  await page.context().close().catch(() => undefined);
  await viewer.context().close();
});

test('on a panel whose public address is an IP address, the second factors say passkeys are unavailable here and why, at 1280 and 390 px', async () => {
  for (const width of [1280, 390]) {
    const page = await newPage({ width, height: 844 });
    await signIn(page, demo.url, demo.account('bob'));
    await page.getByRole('link', { name: 'Account', exact: true }).click();
    await page.getByRole('heading', { name: 'Passkeys' }).waitFor();
    assert.match(await page.locator('#passkeys-unavailable').innerText(), /a passkey belongs to a domain name, and this panel’s public address is an IP address/);
    assert.equal(await page.getByRole('button', { name: 'Add a passkey' }).count(), 0);
    // The authenticator app is offered; customers are not required to have a second factor.
    await page.getByRole('button', { name: 'Set up an authenticator app' }).waitFor();
    assert.equal(await page.locator('#factors-required').count(), 0);
    assert.equal(await page.getByRole('heading', { name: 'Recovery codes' }).count(), 0, 'no recovery codes without a second factor');
    // The daemon says the same.
    const factors = await inPage(page, 'GET', '/account/second-factors');
    assert.deepEqual([factors.body.passkeys_available, factors.body.required], [false, false]);
    const begun = await inPage(page, 'POST', '/account/passkeys/begin', { name: 'laptop' });
    assert.equal(begun.status, 409);
    assert.match(begun.body.error, /domain name/);
    assert.ok(await overflow(page) <= 0, `the account page is wider than ${width} px`);
    await shot(page, `account-second-factors-ip-${width}`);
    await page.context().close();
  }
});
