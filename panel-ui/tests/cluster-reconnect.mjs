// The browser's side of a cluster test (host/tests/all/cluster.rs): a customer's terminal
// console, opened in Chromium through nginx in front of several daemons, survives the loss of
// the daemon relaying it. This script finds that daemon, SIGKILLs it, and checks that the page
// reconnects by itself (through nginx, to a daemon still alive) and echoes a typed line again.
//
// Driven by the Rust test, which passes, as JSON in CLUSTER_RECONNECT: `panel` (nginx's URL),
// `username`, `password`, `service` (the VM's service id), `admin_token`, and `daemons`
// (`[{ url, pid }]`, each daemon's own address and process).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { artifacts, launch, signIn, waitFor } from './harness.mjs';

const setup = JSON.parse(process.env.CLUSTER_RECONNECT ?? '');

/**
 * The one of `daemons` that relays the console: the only one whose own relay counts a live
 * session (the session list itself shows every daemon's).
 */
async function relayingDaemon(daemons) {
  const relaying = [];
  for (const daemon of daemons) {
    const answer = await fetch(`${daemon.url}/api/v1/console/sessions`, {
      headers: { authorization: `Bearer ${setup.admin_token}` },
    });
    assert.equal(answer.status, 200, `console sessions at ${daemon.url}`);
    const { counters } = await answer.json();
    if (counters.live > 0) relaying.push(daemon);
  }
  assert.equal(relaying.length, 1, `one daemon relays the console: ${JSON.stringify(relaying)}`);
  return relaying[0];
}

/** Types `echo <word>` and waits until the terminal shows the word twice (command and output). */
async function echoes(page, word) {
  await page.locator('#console-screen .xterm').click();
  await page.keyboard.type(`echo ${word}\n`, { delay: 10 });
  await waitFor(async () => {
    const rows = await page.locator('.xterm-rows').innerText();
    return (rows.match(new RegExp(word, 'g')) ?? []).length >= 2;
  }, `the echo of ${word}`, 15_000);
}

const browser = await launch();
try {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  page.on('pageerror', (err) => console.error(`page error: ${err.message}`));
  await signIn(page, setup.panel, setup);
  await page.goto(`${setup.panel}/vms/${setup.service}/terminal`);
  await page.locator('#console-screen[data-state="open"]').waitFor({ timeout: 20_000 });
  await waitFor(async () => /root@/.test(await page.locator('.xterm-rows').innerText()), 'the prompt', 15_000);
  await echoes(page, 'before-the-kill');

  const victim = await relayingDaemon(setup.daemons);
  process.kill(victim.pid, 'SIGKILL');
  await page.locator('#console-screen[data-close-code="1006"]').waitFor({ timeout: 15_000 });
  await page.locator('#console-screen[data-state="open"]').waitFor({ timeout: 30_000 });
  await echoes(page, 'after-the-kill');
  const now = await relayingDaemon(setup.daemons.filter((daemon) => daemon !== victim));
  await page.screenshot({ path: join(artifacts, 'cluster-reconnected.png') });
  console.log(JSON.stringify({ killed: victim.url, reconnected_to: now.url }));
} finally {
  await browser.close();
}
