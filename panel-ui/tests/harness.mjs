// Test fixture: starts `porthole demo` on an ephemeral port (simulator included) and Debian's
// Chromium through playwright-core. No browser is downloaded.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, mkdirSync } from 'node:fs';
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

/** Starts the demo and waits for its credentials file. */
export async function startDemo() {
  const dir = mkdtempSync(join(tmpdir(), 'porthole-ui-test-'));
  const credentialsFile = join(dir, 'credentials.json');
  const child = spawn(binary(), ['demo', '--listen', '127.0.0.1:0', '--data-dir', join(dir, 'data'), '--credentials-file', credentialsFile], {
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
