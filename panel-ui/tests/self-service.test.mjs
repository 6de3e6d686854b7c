// Browser tests of the customer's self-service in Debian's Chromium against a `porthole demo` of
// their own: the SSH keychain, ordering with a key from it, and on the VM page snapshots (take,
// roll back, delete), a root password reset and a reinstall, each at 1280 and 390 px. A customer
// page never shows Proxmox detail. Screenshots are kept in panel-ui/test-results/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inPage, overflow, shot as screenshot, usePanel, waitFor } from './harness.mjs';

const { demo, customerPage } = usePanel();
const shot = (page, name) => screenshot(page, name, { fullPage: true });
const WIDTHS = [1280, 390];

// Made by `ssh-keygen -t ed25519 -C alice@laptop`; `ssh-keygen -lf` printed the fingerprint.
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICGDJH8eBzPFP9n3bkhKnzTyrCh8piOk8VzzeU8jCd+L alice@laptop';
const FINGERPRINT = 'SHA256:REm/g7o/gjZYl89e7UeMf0IOcuJImQEECEqcduwwUEg';

/** Asserts that what `page` shows names no node, storage or Proxmox task: that is operators' business. */
async function showsNoProxmoxDetail(page, step) {
  const text = await page.locator('body').innerText();
  const found = text.match(/pve1|pve2|local-lvm|UPID:/);
  assert.equal(found, null, `after ${step} the page shows "${found?.[0]}"`);
}

/** Asserts that `page` fits its window's width, and keeps a screenshot of it. */
async function fits(page, width, name) {
  assert.ok(await overflow(page) <= 0, `${name} is wider than ${width} px`);
  await shot(page, `${name}-${width}`);
}

/** A new page of alice's, at `width`, that may use the clipboard. */
async function alice(width) {
  const page = await customerPage('alice', { width, height: 844 });
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: demo.url });
  return page;
}

/** The id of alice's key `laptop`, added (through her session) if her keychain lacks it. */
async function laptopKey(page) {
  const listed = (await inPage(page, 'GET', '/ssh-keys')).body.find((k) => k.fingerprint === FINGERPRINT);
  if (listed) return listed.id;
  const added = await inPage(page, 'POST', '/ssh-keys', { name: 'laptop', public_key: KEY });
  assert.equal(added.status, 201, JSON.stringify(added));
  return added.body.id;
}

/** Confirms the open typed confirmation: the button works only once `name` is typed. */
async function typeToConfirm(page, name, button) {
  const dialog = page.getByRole('dialog');
  const confirm = dialog.getByRole('button', { name: button, exact: true });
  assert.equal(await confirm.isDisabled(), true, 'confirmable before the name is typed');
  await dialog.getByLabel(`Type ${name} to confirm`).fill(`${name}x`);
  assert.equal(await confirm.isDisabled(), true, 'confirmable with another name');
  await dialog.getByLabel(`Type ${name} to confirm`).fill(name);
  await confirm.click();
}

test('a customer adds an SSH key to the keychain, sees its fingerprint, is told why junk is not a key, and removes it, at 1280 and 390 px', async () => {
  for (const width of WIDTHS) {
    const page = await alice(width);
    await page.getByRole('link', { name: 'Account', exact: true }).click();
    await page.getByRole('navigation', { name: 'Account pages' }).getByRole('link', { name: 'SSH keys' }).click();
    await page.getByRole('heading', { name: 'SSH keys', level: 1 }).waitFor();
    assert.equal(new URL(page.url()).pathname, '/account/ssh-keys');
    await page.locator('#no-keys').waitFor();

    await page.getByLabel('Key name').fill('junk');
    await page.getByLabel('Public key').fill('ssh-ed25519 AAAA junk');
    await page.getByRole('button', { name: 'Add key' }).click();
    await page.locator('#new-key-status').getByText(/^This is not an OpenSSH public key .*paste the line from your \.pub file\.$/).waitFor();
    await showsNoProxmoxDetail(page, 'a junk key');
    await fits(page, width, 'ssh-keys-refused');

    // The key's comment names it when no name is given.
    await page.getByLabel('Key name').fill('');
    await page.getByLabel('Public key').fill(KEY);
    await page.getByLabel('Public key').blur();
    assert.equal(await page.getByLabel('Key name').inputValue(), 'alice@laptop');
    await page.getByLabel('Key name').fill('laptop');
    await page.getByRole('button', { name: 'Add key' }).click();
    await page.locator('#keys-status').getByText(`Key “laptop” added: ${FINGERPRINT}.`).waitFor();
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'keys-status');
    const row = page.getByRole('table', { name: 'Your SSH keys' }).getByRole('row').filter({ hasText: 'laptop' });
    const cells = await row.getByRole('cell').allInnerTexts();
    assert.deepEqual(cells.slice(0, 2), ['laptop', FINGERPRINT]);
    assert.notEqual(cells[2].trim(), '', 'the date it was added');
    await showsNoProxmoxDetail(page, 'adding a key');
    await fits(page, width, 'ssh-keys-added');

    // The same key again is refused, with the reason.
    await page.getByLabel('Key name').fill('laptop again');
    await page.getByLabel('Public key').fill(KEY);
    await page.getByRole('button', { name: 'Add key' }).click();
    await page.locator('#new-key-status').getByText(/already has a key/).waitFor();

    await page.getByRole('button', { name: 'Remove the key laptop' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Remove key' }).click();
    await page.locator('#keys-status').getByText('Key “laptop” removed.').waitFor();
    await page.locator('#no-keys').waitFor();
    assert.deepEqual((await inPage(page, 'GET', '/ssh-keys')).body, []);
    await page.context().close();
  }
});

test('a customer orders a VM with a key from the keychain, then snapshots, rolls back, deletes the snapshot, resets the root password and reinstalls it, at 1280 and 390 px', async () => {
  for (const width of WIDTHS) {
    const page = await alice(width);
    await laptopKey(page);
    await page.getByRole('link', { name: 'Order', exact: true }).click();
    await page.getByRole('heading', { name: 'Order a VM' }).waitFor();
    assert.equal(await page.getByRole('link', { name: 'Manage your SSH keys' }).getAttribute('href'), '/account/ssh-keys');
    await page.getByLabel('Plan').selectOption('small');
    await page.getByLabel('Template').selectOption('debian-12');
    await page.getByLabel('Hostname').fill(`self-${width}`);
    await page.getByRole('checkbox', { name: /laptop/ }).check();
    await showsNoProxmoxDetail(page, 'opening the order form');
    await fits(page, width, 'order-with-key');
    await page.getByRole('button', { name: 'Order', exact: true }).click();
    await page.waitForURL(/\/vms\/\d+$/);
    const id = Number(new URL(page.url()).pathname.split('/').pop());
    await waitFor(async () => (await page.locator('#vm-state').innerText()).includes('active'), 'the order to become active', 90_000);
    const name = `self-${width}`;
    await page.getByRole('heading', { name, level: 1 }).waitFor();
    // The demo's pools gave it a public address of each family.
    await waitFor(async () => /192\.0\.2\.\d+\s+IPv4[\s\S]*\n2001:db8:100::\S+\s+IPv6/.test(await page.locator('#vm-addresses').innerText()), 'its addresses');

    // Snapshots: none yet, of the plan's two.
    const count = page.locator('#snapshot-count');
    await count.getByText('0 of 2 snapshots.').waitFor();
    await page.getByLabel('Snapshot name').fill('9lives');
    assert.equal(await page.getByLabel('Snapshot name').evaluate((input) => input.validity.patternMismatch), true);
    await page.getByLabel('Snapshot name').fill('before-upgrade');
    assert.equal(await page.getByLabel('Snapshot name').evaluate((input) => input.validity.patternMismatch), false);
    await page.getByLabel('Description (optional)').fill('clean install');
    await page.getByRole('button', { name: 'Take snapshot' }).click();
    const snapshots = page.locator('#snapshots-status');
    await snapshots.getByText('Snapshot “before-upgrade” taken.').waitFor({ timeout: 20_000 });
    const table = page.getByRole('table', { name: 'Snapshots, oldest first' });
    const row = table.getByRole('row').filter({ hasText: 'before-upgrade' });
    await row.locator('.badge', { hasText: 'current' }).waitFor();
    const cells = await row.getByRole('cell').allInnerTexts();
    assert.match(cells[0], /^before-upgrade\s+current$/);
    assert.equal(cells[1], 'clean install');
    await count.getByText('1 of 2 snapshots.').waitFor();
    await showsNoProxmoxDetail(page, 'taking a snapshot');
    await fits(page, width, 'vm-snapshot-taken');

    // Rolling back takes the snapshot's name, typed.
    await page.getByRole('button', { name: 'Roll back to before-upgrade' }).click();
    assert.match(await page.getByRole('dialog').innerText(), /everything written to them since is lost/);
    await fits(page, width, 'vm-rollback-confirm');
    await typeToConfirm(page, 'before-upgrade', 'Roll back');
    await snapshots.getByText('Rolled back to “before-upgrade”.').waitFor({ timeout: 20_000 });
    await showsNoProxmoxDetail(page, 'rolling back');

    await page.getByRole('button', { name: 'Delete the snapshot before-upgrade' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete snapshot' }).click();
    await snapshots.getByText('Snapshot “before-upgrade” deleted.').waitFor({ timeout: 20_000 });
    await count.getByText('0 of 2 snapshots.').waitFor();
    assert.equal(await table.count(), 0);
    await showsNoProxmoxDetail(page, 'deleting a snapshot');

    // The rollback restarts the VM: a password is set in a running one.
    await waitFor(async () => (await page.locator('#vm-power').innerText()).includes('running'), 'the VM to run again', 30_000);
    await page.getByRole('button', { name: 'Reset root password' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Reset password' }).click();
    const password = page.locator('#vm-password-value');
    await password.waitFor();
    const root = await password.inputValue();
    assert.match(root, /^[A-Za-z0-9]{20}$/);
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'vm-password-value');
    const shown = page.getByRole('region', { name: 'New password for root' });
    await shown.getByText('it will not be shown again', { exact: false }).waitFor();
    await shown.getByRole('button', { name: 'Copy', exact: true }).click();
    await shown.getByText('Copied.').waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), root);
    await showsNoProxmoxDetail(page, 'resetting the password');
    await fits(page, width, 'vm-password-reset');

    // Reinstall with the key, confirmed with the VM's name.
    const reinstall = page.locator('#reinstall');
    await reinstall.getByLabel('Template', { exact: true }).selectOption('debian-12');
    await reinstall.getByRole('checkbox', { name: /laptop/ }).check();
    await reinstall.getByRole('button', { name: 'Reinstall…' }).click();
    assert.match(await page.getByRole('dialog').innerText(), /everything on the disk is lost/);
    await typeToConfirm(page, name, 'Reinstall');
    const fresh = page.locator('#reinstall-password-value');
    await fresh.waitFor();
    assert.match(await fresh.inputValue(), /^[A-Za-z0-9]{20}$/);
    assert.notEqual(await fresh.inputValue(), root);
    const once = page.getByRole('region', { name: 'New password for debian' });
    await once.getByText('it will not be shown again', { exact: false }).waitFor();
    await once.getByRole('button', { name: 'Copy', exact: true }).waitFor();
    await page.locator('#reinstall-status').getByText('Reinstalled from debian-12.').waitFor({ timeout: 60_000 });
    await page.locator('#progress li').filter({ hasText: 'mark reinstalled: done' }).first().waitFor();
    const job = page.getByRole('table', { name: 'Jobs' }).getByRole('row').filter({ hasText: 'reinstall' });
    assert.match(await job.innerText(), /succeeded/);
    await waitFor(async () => (await page.locator('#vm-state').innerText()).includes('active'), 'the VM to be active again');
    await showsNoProxmoxDetail(page, 'reinstalling');
    await fits(page, width, 'vm-reinstalled');
    // Shown once: the page opened again has no password.
    await page.reload();
    await page.locator('#vm-state').waitFor();
    await page.locator('#snapshot-count').getByText('0 of 2 snapshots.').waitFor();
    assert.equal(await page.locator('#reinstall-password-value, #vm-password-value').count(), 0);
    await showsNoProxmoxDetail(page, 'opening the page again');

    // The reinstalled VM's job came from this customer's request, with her key.
    const jobs = (await demo.adminApi('GET', `/services/${id}`)).body.jobs;
    assert.deepEqual(jobs.filter((j) => j.kind === 'reinstall').map((j) => j.state), ['succeeded']);
    await page.context().close();
  }
});

test("an adopted VM, not built by an order here: the password reset says the guest agent does not answer and leads to the reinstall, which says why it cannot, at 1280 and 390 px", async () => {
  const id = demo.account('alice').vms[0];
  for (const width of WIDTHS) {
    const page = await alice(width);
    await page.goto(`${demo.url}/vms/${id}`);
    await page.getByRole('heading', { name: 'alice-web', level: 1 }).waitFor();
    await page.getByRole('button', { name: 'Reset root password' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Reset password' }).click();
    const status = page.locator('#password-reset-status');
    await status.getByText(/guest agent does not answer.*reinstall it\.$/).waitFor();
    assert.equal(await page.locator('#vm-password-value').count(), 0);
    await showsNoProxmoxDetail(page, 'a refused password reset');
    await fits(page, width, 'vm-password-refused');

    await page.getByRole('button', { name: 'Reinstall instead' }).click();
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'reinstall-h');
    await page.locator('#reinstall').getByRole('button', { name: 'Reinstall…' }).click();
    await typeToConfirm(page, 'alice-web', 'Reinstall');
    await page.locator('#reinstall-status').getByText('This VM was not built by an order here, so it cannot be reinstalled.').waitFor();
    assert.equal(await page.locator('#reinstall-password-value').count(), 0);
    await showsNoProxmoxDetail(page, 'a refused reinstall');
    await fits(page, width, 'vm-reinstall-refused');
    await page.context().close();
  }
});
