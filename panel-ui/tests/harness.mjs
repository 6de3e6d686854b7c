// Test fixture: starts `porthole demo` (simulator included) and Debian's Chromium through
// playwright-core. No browser is downloaded. A test file calls `usePanel()` for a demo and a
// browser of its own, and pages held to the daemon's Content-Security-Policy.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const repo = resolve(here, '../..');
export const artifacts = resolve(here, '../test-results');
mkdirSync(artifacts, { recursive: true });

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** The daemon binary: $PORTHOLE_BIN, or the workspace's debug build. */
function binary() {
  const bin = process.env.PORTHOLE_BIN ?? join(repo, 'target/debug/porthole');
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`cargo build -p porthole\` first`);
  return bin;
}

/**
 * Starts the demo and waits for its credentials file. `listen` is its address (an ephemeral port
 * by default); `extraConfig` is TOML merged into its configuration (`porthole demo --extra-config`).
 */
export async function startDemo({ listen = '127.0.0.1:0', extraConfig } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'porthole-ui-test-'));
  const credentialsFile = join(dir, 'credentials.json');
  const args = ['demo', '--listen', listen, '--data-dir', join(dir, 'data'), '--credentials-file', credentialsFile];
  if (extraConfig) {
    const file = join(dir, 'extra.toml');
    writeFileSync(file, extraConfig);
    args.push('--extra-config', file);
  }
  const child = spawn(binary(), args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
  });
  let log = '';
  child.stdout.on('data', (d) => { log += d; });
  child.stderr.on('data', (d) => { log += d; });
  const deadline = Date.now() + 180_000;
  while (!existsSync(credentialsFile) || readFileSync(credentialsFile, 'utf8').length === 0) {
    if (child.exitCode !== null) throw new Error(`porthole demo exited (${child.exitCode}):\n${log}`);
    if (Date.now() > deadline) throw new Error(`porthole demo did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  await new Promise((r) => setTimeout(r, 200));
  const credentials = JSON.parse(readFileSync(credentialsFile, 'utf8'));
  const account = (name) => credentials.accounts.find((a) => a.username === name);
  const adminApi = async (method, path, body) => {
    const response = await fetch(`${credentials.url}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${account('admin').api_token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  };
  const stop = async () => {
    child.kill('SIGTERM');
    await new Promise((r) => { if (child.exitCode !== null) r(); else child.once('exit', r); setTimeout(r, 5000); });
  };
  return { url: credentials.url, credentials, account, adminApi, stop, log: () => log };
}

/** A TCP port free on 127.0.0.1 now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Demo options for a panel whose public URL is `http://localhost:PORT` (passkeys need a domain
 * name, not an IP address), then `extraConfig`'s TOML.
 */
export async function onLocalhost(extraConfig = '') {
  const port = await freePort();
  // A top-level key, so before any table of `extraConfig`.
  return { listen: `127.0.0.1:${port}`, extraConfig: `public_url = "http://localhost:${port}"\n${extraConfig}` };
}

/**
 * A test file's panel: a demo of its own (started with `options`, or what `options()` answers)
 * and a browser, for all of the file's tests. `demo` is filled in before the first test. Every
 * page `newPage` opens is held to the daemon's Content-Security-Policy: a violation fails the test
 * that caused it.
 */
export function usePanel(options = {}) {
  const demo = {};
  let browser;
  before(async () => {
    Object.assign(demo, await startDemo(typeof options === 'function' ? await options() : options));
    browser = await launch();
  }, { timeout: 240_000 });
  after(async () => {
    await browser?.close();
    await demo.stop?.();
  });
  const cspViolations = [];
  afterEach(() => {
    const found = cspViolations.splice(0);
    assert.deepEqual(found, [], 'the panel broke its Content-Security-Policy');
  });

  /** A page in a new browser context (its own cookies). */
  async function newPage(viewport = { width: 1280, height: 900 }) {
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    page.on('pageerror', (err) => console.error(`page error: ${err.message}`));
    await recordCspViolations(page, cspViolations);
    return page;
  }

  /** A new page signed in as the demo's customer `name`. */
  async function customerPage(name = 'alice', viewport = { width: 1280, height: 900 }) {
    const page = await newPage(viewport);
    await signIn(page, demo.url, demo.account(name));
    return page;
  }

  return { demo, newPage, customerPage };
}

/** A screenshot kept in panel-ui/test-results/. */
export function shot(page, name, options = {}) {
  return page.screenshot({ path: join(artifacts, `${name}.png`), ...options });
}

/** How far the page is wider than its window (0 or less: it fits). */
export function overflow(page) {
  return page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
}

/** The API as the browser session of `page` sees it. */
export function inPage(page, method, path, body) {
  return page.evaluate(async ([method, path, body]) => {
    const response = await fetch(`/api/v1${path}`, {
      method, headers: body ? { 'content-type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined,
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  }, [method, path, body]);
}

/**
 * Records every Content-Security-Policy violation on `page`: the document's
 * `securitypolicyviolation` events and Chromium's "Refused to …" console messages. The daemon's
 * CSP allows no inline style or script, so anything here is a panel bug.
 */
export function recordCspViolations(page, into) {
  page.on('console', (message) => {
    if (/Refused to|Content Security Policy/.test(message.text())) into.push(`${page.url()}: ${message.text()}`);
  });
  page.on('pageerror', (err) => { if (/Content Security Policy/.test(err.message)) into.push(`${page.url()}: ${err.message}`); });
  return page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`Content Security Policy violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${e.sample})`);
    });
  });
}

export async function launch() {
  return chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: CHROMIUM_ARGS, headless: true });
}

/** Signs in through the form, as a person would (keyboard only). */
export async function signIn(page, url, account) {
  await page.goto(`${url}/login`);
  await page.getByLabel('Username').fill(account.username);
  await page.getByLabel('Password').fill(account.password);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: /VMs/ }).waitFor();
}

export async function waitFor(predicate, what, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
