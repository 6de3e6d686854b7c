// Browser tests of the VM page's addresses in Debian's Chromium against a `porthole demo` of their
// own, at 1280 and 390 px: each address on its line with its family and reverse DNS, setting the
// IPv4 address's reverse DNS to the VM's own name under the demo's zone, which needs no lookup (a
// job, after which the page shows it), a name refused with the daemon's reason next to the form that keeps it, and removing it.
// Screenshots are kept in panel-ui/test-results/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inPage, overflow, shot as screenshot, usePanel, waitFor } from './harness.mjs';

const { demo, customerPage } = usePanel();
const shot = (page, name) => screenshot(page, name, { fullPage: true });
const WIDTHS = [1280, 390];
/** A VM's own name under the demo's zone: accepted as reverse DNS without a DNS lookup. */
const ownName = (vmName) => `${vmName}.demo.porthole.test`;

/** Asserts that `page` fits its window's width, and keeps a screenshot of it. */
async function fits(page, width, name) {
  assert.ok(await overflow(page) <= 0, `${name} is wider than ${width} px`);
  await shot(page, `${name}-${width}`);
}

/** The VM as alice's session sees it. */
async function vm(page, id) {
  const answer = await inPage(page, 'GET', `/vms/${id}`);
  assert.equal(answer.status, 200, JSON.stringify(answer));
  return answer.body;
}

/**
 * The id of alice's first active VM with an address whose reverse DNS she may set. The demo's
 * seeded VMs hold no pool addresses: the first time, one is ordered (through her session) and
 * waited for until it is active.
 */
async function vmWithAddresses(page) {
  for (const listed of (await inPage(page, 'GET', '/vms')).body.vms) {
    const detail = await vm(page, listed.id);
    if (detail.state === 'active' && detail.addresses.some((a) => a.family === 'ipv4' && a.reverse_dns_settable)) return listed.id;
  }
  const order = await inPage(page, 'POST', '/orders', { plan: 'small', template: 'debian-12', hostname: 'rdns', username: 'debian' });
  assert.equal(order.status, 202, JSON.stringify(order));
  const id = order.body.service_id;
  await waitFor(async () => (await vm(page, id)).state === 'active', 'the order to be active', 90_000);
  return id;
}

test("a customer sets her VM's IPv4 reverse DNS to its own name under the provider's zone, is told why another name is refused, and removes it, at 1280 and 390 px", async () => {
  for (const width of WIDTHS) {
    const page = await customerPage('alice', { width, height: 844 });
    const id = await vmWithAddresses(page);
    const { name, addresses } = await vm(page, id);
    const target = ownName(name);
    const v4 = addresses.find((a) => a.family === 'ipv4').address;
    const v6 = addresses.find((a) => a.family === 'ipv6').address;
    await page.goto(`${demo.url}/vms/${id}`);
    await page.getByRole('heading', { name, level: 1 }).waitFor();

    // A line each, with its family and its reverse DNS (none yet).
    const list = page.locator('#vm-addresses');
    const row = list.locator(`[data-address="${v4}"]`);
    await row.waitFor();
    assert.equal(await list.locator('li').count(), addresses.length);
    assert.match(await row.innerText(), new RegExp(`^${v4.replace(/\./g, '\\.')}\\s+IPv4\\s+no reverse DNS\\s+Edit reverse DNS`));
    assert.match(await list.locator(`[data-address="${v6}"]`).innerText(), /IPv6\s+no reverse DNS/);
    await fits(page, width, 'vm-addresses');

    const edit = row.getByRole('button', { name: `Edit reverse DNS of ${v4}` });
    await edit.click();
    assert.equal(await edit.getAttribute('aria-expanded'), 'true');
    const form = row.getByRole('form', { name: `Reverse DNS of ${v4}` });
    const input = form.getByLabel('Host name');
    assert.equal(await input.inputValue(), '');
    assert.equal(await form.getByRole('button', { name: 'Remove' }).count(), 0, 'Remove offered with nothing to remove');

    // Not a host name: the daemon's reason, next to the form, which keeps what was typed.
    await input.fill('not a name');
    await form.getByRole('button', { name: 'Save' }).click();
    await form.getByRole('alert').getByText(/^"not a name" is not a fully qualified host name \(like mail\.example\.com\)\.$/).waitFor();
    assert.equal(await input.inputValue(), 'not a name');
    assert.equal(await form.isVisible(), true);
    await fits(page, width, 'vm-reverse-dns-refused');

    // A name under the demo's zone needs no lookup: the job runs, and the page shows the name.
    await input.fill(target);
    await form.getByRole('button', { name: 'Save' }).click();
    await row.getByRole('status').getByText(`Reverse DNS of ${v4} set.`).waitFor({ timeout: 30_000 });
    await row.locator('.reverse-dns').getByText(`Reverse DNS: ${target}`, { exact: true }).waitFor({ timeout: 10_000 });
    assert.equal(await form.isHidden(), true);
    assert.equal(await edit.getAttribute('aria-expanded'), 'false');
    assert.equal((await vm(page, id)).addresses.find((a) => a.address === v4).reverse_dns, target);
    const job = page.getByRole('table', { name: 'Jobs' }).getByRole('row').filter({ hasText: 'reverse dns' }).last();
    assert.match(await job.innerText(), /succeeded/);
    assert.match(await list.locator(`[data-address="${v6}"]`).innerText(), /no reverse DNS/);
    await fits(page, width, 'vm-reverse-dns-set');

    // Opened again, the form holds the name and offers to remove it.
    await edit.click();
    assert.equal(await input.inputValue(), target);
    await form.getByRole('button', { name: 'Remove' }).click();
    await row.getByRole('status').getByText(`Reverse DNS of ${v4} removed.`).waitFor({ timeout: 30_000 });
    await row.locator('.reverse-dns').getByText('no reverse DNS', { exact: true }).waitFor({ timeout: 10_000 });
    assert.equal((await vm(page, id)).addresses.find((a) => a.address === v4).reverse_dns ?? null, null);
    await fits(page, width, 'vm-reverse-dns-removed');
    await page.context().close();
  }
});
