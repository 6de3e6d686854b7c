// Browser tests of the VM page's graphs and backups in Debian's Chromium against a `porthole demo`
// of their own, on a VM the customer orders in the test, at 1280 and 390 px: four charts drawn to
// the page's width, a timeframe switch that reads the series again (and the page's polling that
// does not), backing up (power actions wait, saying why), restoring with the VM's name typed, and
// a backup that stopped, told in the customer's words. A customer page never shows Proxmox detail.
// Screenshots are kept in panel-ui/test-results/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { overflow, shot as screenshot, usePanel, waitFor } from './harness.mjs';

const { demo, customerPage } = usePanel();
const shot = (page, name) => screenshot(page, name, { fullPage: true });
const WIDTHS = [1280, 390];
const POWER = ['start', 'shutdown', 'reboot', 'stop'];

/** Asserts that what `page` shows names no node, storage, backup tool or Proxmox task. */
async function showsNoProxmoxDetail(page, step) {
  const text = await page.locator('body').innerText();
  const found = text.match(/pve1|pve2|local-lvm|local:|vzdump|UPID:/);
  assert.equal(found, null, `after ${step} the page shows "${found?.[0]}"`);
}

/** Asserts that `page` fits its window's width, and keeps a screenshot of it. */
async function fits(page, width, name) {
  assert.ok(await overflow(page) <= 0, `${name} is wider than ${width} px`);
  await shot(page, `${name}-${width}`);
}

/** A fault on the simulator: the next matching Proxmox request is slowed down or its task fails. */
async function fault(method, path, kind) {
  const response = await fetch(new URL('faults', demo.credentials.simulator_control_url), {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ method, path, kind }),
  });
  assert.equal(response.status, 201, await response.text());
}

/** The VMs alice ordered here, by the width of the page that ordered them. */
const ordered = new Map();

/**
 * A page of alice's at `width` on her VM `gb-<width>`, ordered (the first time) through the form
 * and waited for until it is active. `before` runs on the page before it opens the VM.
 */
async function onOrderedVm(width, before = () => {}) {
  const page = await customerPage('alice', { width, height: 844 });
  await before(page);
  const name = `gb-${width}`;
  if (ordered.has(width)) {
    await page.goto(`${demo.url}/vms/${ordered.get(width)}`);
  } else {
    await page.getByRole('link', { name: 'Order', exact: true }).click();
    await page.getByLabel('Plan').selectOption('small');
    await page.getByLabel('Template').selectOption('debian-12');
    await page.getByLabel('Hostname').fill(name);
    await page.getByRole('button', { name: 'Order', exact: true }).click();
    await page.waitForURL(/\/vms\/\d+$/);
    ordered.set(width, Number(new URL(page.url()).pathname.split('/').pop()));
  }
  await page.getByRole('heading', { name, level: 1 }).waitFor();
  await waitFor(async () => (await page.locator('#vm-state').innerText()).includes('active'), 'the VM to be active', 90_000);
  return { page, id: ordered.get(width), name };
}

/** The power buttons that can be pressed now. */
async function powerEnabled(page) {
  const enabled = [];
  for (const action of POWER) if (!(await page.locator(`button[data-action="${action}"]`).isDisabled())) enabled.push(action);
  return enabled;
}

/** Sizes of the four charts' canvases, as laid out, and their figures' widths. */
function chartSizes(page) {
  return page.locator('#graphs figure').evaluateAll((figures) => figures.map((figure) => {
    const canvas = figure.querySelector('canvas');
    const box = canvas?.getBoundingClientRect();
    return { figure: figure.getBoundingClientRect().width, width: box?.width ?? 0, height: box?.height ?? 0, pixels: canvas?.width ?? 0 };
  }));
}

test('the graphs draw CPU, memory, network and disk I/O as wide as the page, switch to the last day, and are not read again at every poll, at 1280 and 390 px', async () => {
  for (const width of WIDTHS) {
    const asked = [];
    const { page, id } = await onOrderedVm(width, (p) => p.on('request', (r) => { if (r.url().includes('/graphs')) asked.push(r.url()); }));
    const graphs = page.locator('#graphs');
    await waitFor(async () => (await graphs.locator('canvas').count()) === 4, 'four charts', 20_000);
    for (const title of ['CPU', 'Memory', 'Network', 'Disk I/O']) {
      await graphs.getByRole('heading', { name: title, level: 3, exact: true }).waitFor();
    }
    for (const name of ['CPU use, in percent of its cores, over the last hour', 'Memory in use and its size over the last hour',
      'Network traffic in and out, per second, over the last hour', 'Disk reads and writes, per second, over the last hour']) {
      const chart = graphs.getByRole('img', { name, exact: true });
      assert.equal(await chart.count(), 1, name);
      // The chart's description is its summary: the latest and highest values, in words.
      assert.match(await chart.evaluate((c) => document.getElementById(c.getAttribute('aria-describedby'))?.textContent ?? ''), /^Latest .*; highest /);
    }
    assert.match(await page.locator('#graph-cpu-summary').innerText(), /^Latest \d+(\.\d)? % of its cores; highest \d+(\.\d)? %\.$/);
    assert.match(await page.locator('#graph-memory-summary').innerText(), /^Latest \d+(\.\d)? [KMG]iB used of 2 GiB; highest /);
    assert.match(await page.locator('#graph-network-summary').innerText(), /^Latest in \d+(\.\d)? (B|KiB|MiB)\/s, out /);
    assert.match(await page.locator('#graph-disk-summary').innerText(), /^Latest read \d+(\.\d)? (B|KiB|MiB)\/s, write /);
    assert.match(await page.locator('#graphs-range').innerText(), /^Last hour, a point a minute, up to /);
    for (const size of await chartSizes(page)) {
      assert.ok(size.width > 100 && size.height > 100 && size.pixels > 0, JSON.stringify(size));
      assert.ok(size.width <= size.figure, `a chart wider than its box: ${JSON.stringify(size)}`);
    }
    if (width === 1280) {
      // Two a row on a wide page.
      const sizes = await chartSizes(page);
      assert.ok(sizes.every((s) => s.width > 400 && s.width < 640), JSON.stringify(sizes));
    }
    await showsNoProxmoxDetail(page, 'drawing the graphs');
    await fits(page, width, 'vm-graphs');

    // The page polls every 3 s; the hour's series is read again once a minute at most.
    const before = asked.length;
    await page.waitForTimeout(7000);
    assert.equal(asked.length, before, `the graphs were read again within 7 s: ${asked.slice(before).join(', ')}`);

    const day = page.waitForResponse((r) => r.url().includes(`/api/v1/vms/${id}/graphs?timeframe=day`));
    await graphs.getByRole('button', { name: 'Last day' }).click();
    assert.equal((await day).status(), 200);
    await graphs.getByRole('img', { name: 'CPU use, in percent of its cores, over the last day', exact: true }).waitFor();
    assert.match(await page.locator('#graphs-range').innerText(), /^Last day, a point every 30 minutes, up to /);
    assert.equal(await graphs.getByRole('button', { name: 'Last day' }).getAttribute('aria-pressed'), 'true');
    assert.equal(await graphs.getByRole('button', { name: 'Last hour' }).getAttribute('aria-pressed'), 'false');
    assert.equal(await graphs.locator('canvas').count(), 4);
    await fits(page, width, 'vm-graphs-day');

    if (width === 1280) {
      // The window made as narrow as a phone: the charts follow it.
      await page.setViewportSize({ width: 390, height: 844 });
      await waitFor(async () => (await chartSizes(page)).every((s) => s.width > 100 && s.width <= 370), 'the charts to narrow', 5000);
      assert.ok(await overflow(page) <= 0, 'the page made narrower is wider than 390 px');
      await shot(page, 'vm-graphs-narrowed');
    }
    await page.context().close();
  }
});

test('a customer backs a VM up (its power actions wait, saying why), sees it listed with its size, restores it with the VM\'s name typed, and is told in plain words of a backup that stopped, at 1280 and 390 px', async () => {
  for (const width of WIDTHS) {
    const { page, name } = await onOrderedVm(width);
    const backups = page.locator('#backups');
    const status = page.locator('#backups-status');
    await page.locator('#backup-policy').getByText(/^Kept: 2, the newest; .* Schedule: none/).waitFor();
    await page.locator('#no-backups').waitFor();
    await waitFor(async () => (await powerEnabled(page)).join() === 'shutdown,reboot,stop', 'the running VM\'s power actions');
    await showsNoProxmoxDetail(page, 'opening the backups');
    await fits(page, width, 'vm-backups-none');

    // The backup is slowed down, so that the page sees it under way.
    await fault('POST', '/nodes/{node}/vzdump', { latency: { ms: 4000 } });
    await backups.getByRole('button', { name: 'Back up now' }).click();
    await status.getByText(`Backing up ${name}…`).waitFor();
    await page.locator('#power-note').getByText('Power actions are unavailable: the VM is being backed up.').waitFor({ timeout: 10_000 });
    assert.deepEqual(await powerEnabled(page), []);
    assert.equal(await backups.getByRole('button', { name: 'Back up now' }).isDisabled(), true);
    assert.match(await page.locator('#backups-busy').innerText(), /^The VM is being backed up\. /);
    await showsNoProxmoxDetail(page, 'starting a backup');
    await fits(page, width, 'vm-backup-running');

    await status.getByText('Backup taken.').waitFor({ timeout: 30_000 });
    const table = page.getByRole('table', { name: 'Backups, oldest first' });
    await table.waitFor();
    const rows = table.locator('tbody tr');
    assert.equal(await rows.count(), 1);
    const [taken, size] = await rows.first().getByRole('cell').allInnerTexts();
    assert.notEqual(taken.trim(), '');
    assert.match(size, /^\d+(\.\d)? (GiB|MiB)$/);
    await waitFor(async () => (await powerEnabled(page)).join() === 'shutdown,reboot,stop', 'the power actions back');
    assert.equal(await page.locator('#power-note').innerText(), '');
    await showsNoProxmoxDetail(page, 'taking a backup');
    await fits(page, width, 'vm-backup-taken');

    // Restoring takes the VM's name, typed.
    await table.getByRole('button', { name: `Restore the backup of ${taken}` }).click();
    const dialog = page.getByRole('dialog');
    const words = await dialog.innerText();
    assert.match(words, /is stopped, its disks are replaced with this backup, and it is started again/);
    assert.match(words, /Everything written to it since .* is lost/);
    await fits(page, width, 'vm-restore-confirm');
    const confirm = dialog.getByRole('button', { name: 'Restore', exact: true });
    assert.equal(await confirm.isDisabled(), true, 'confirmable before the name is typed');
    await dialog.getByLabel(`Type ${name} to confirm`).fill(`${name}x`);
    assert.equal(await confirm.isDisabled(), true, 'confirmable with another name');
    await dialog.getByLabel(`Type ${name} to confirm`).fill(name);
    await confirm.click();
    await status.getByText(`Restored the backup of ${taken}.`).waitFor({ timeout: 30_000 });
    const job = page.getByRole('table', { name: 'Jobs' }).getByRole('row').filter({ hasText: 'restore' });
    assert.match(await job.innerText(), /succeeded/);
    await page.locator('#progress li').filter({ hasText: 'wait running: done' }).first().waitFor();
    await waitFor(async () => (await page.locator('#vm-state').innerText()).includes('active'), 'the VM to be active again');
    await waitFor(async () => (await page.locator('#vm-power').innerText()).includes('running'), 'the VM to run again');
    assert.equal(await rows.count(), 1, 'a restore keeps the backup');
    await showsNoProxmoxDetail(page, 'restoring');
    await fits(page, width, 'vm-restored');

    // A backup whose Proxmox task fails stops: told in the customer's words, not Proxmox's.
    await fault('POST', '/nodes/{node}/vzdump', { task_fail: { message: 'vzdump: storage local full' } });
    await backups.getByRole('button', { name: 'Back up now' }).click();
    await status.getByText('The backup stopped and waits for an operator: the backup could not be taken.').waitFor({ timeout: 30_000 });
    const parked = page.locator('#parked');
    await parked.getByText('The backup did not finish: the backup could not be taken. It waits for an operator; contact support if you need it sooner.').waitFor();
    const parkedRow = page.getByRole('table', { name: 'Jobs' }).getByRole('row').filter({ hasText: 'parked' });
    assert.match(await parkedRow.innerText(), /the backup could not be taken/);
    assert.doesNotMatch(await page.locator('body').innerText(), /storage local full/);
    await showsNoProxmoxDetail(page, 'a backup that stopped');
    await fits(page, width, 'vm-backup-parked');

    // Another backup can be taken; with it the notice goes. A third, beyond the plan's two,
    // removes the oldest, and is asked for first.
    await backups.getByRole('button', { name: 'Back up now' }).click();
    await status.getByText(`Backing up ${name}…`).waitFor();
    await status.getByText('Backup taken.').waitFor({ timeout: 30_000 });
    await waitFor(async () => (await rows.count()) === 2, 'two backups listed');
    assert.equal(await parked.isHidden(), true);
    const oldest = (await rows.first().getByRole('cell').allInnerTexts())[0];
    await waitFor(async () => !(await backups.getByRole('button', { name: 'Back up now' }).isDisabled()), 'backing up to be possible again');
    await backups.getByRole('button', { name: 'Back up now' }).click();
    assert.match(await page.getByRole('dialog').innerText(), /Your plan keeps 2 backups, so the oldest .* is removed once the new one is taken/);
    await page.getByRole('dialog').getByRole('button', { name: 'Back up now' }).click();
    await status.getByText(`Backing up ${name}…`).waitFor();
    await status.getByText('Backup taken.').waitFor({ timeout: 30_000 });
    await waitFor(async () => (await rows.count()) === 2 && (await rows.first().getByRole('cell').allInnerTexts())[0] !== oldest, 'the oldest backup to go');
    await showsNoProxmoxDetail(page, 'backing up beyond the plan');
    await page.context().close();
  }
});
