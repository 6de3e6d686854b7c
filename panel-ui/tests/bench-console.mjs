// Measures click on Console → first frame drawn, in Chromium against `porthole demo` (the
// simulator), over 20 opens; prints p50/p90/min/max in milliseconds.
import { launch, signIn, startDemo } from './harness.mjs';

const OPENS = Number(process.env.OPENS ?? 20);
const demo = await startDemo();
const browser = await launch();
try {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  await signIn(page, demo.url, demo.account('alice'));
  const id = demo.account('alice').vms[0];
  const samples = [];
  for (let i = 0; i < OPENS + 1; i++) {
    await page.goto(`${demo.url}/vms/${id}`);
    await page.locator('#open-console').waitFor();
    await page.locator('#open-console').click();
    const screen = page.locator('#console-screen[data-first-frame-ms]');
    await screen.waitFor({ timeout: 20_000 });
    const ms = Number(await screen.getAttribute('data-first-frame-ms'));
    if (i > 0) samples.push(ms); // the first open warms caches and is not counted
  }
  samples.sort((a, b) => a - b);
  const pick = (q) => { const at = q * (samples.length - 1); const lo = Math.floor(at); return +(samples[lo] + (samples[Math.ceil(at)] - samples[lo]) * (at - lo)).toFixed(1); };
  console.log(JSON.stringify({ opens: samples.length, p50_ms: pick(0.5), p90_ms: pick(0.9), min_ms: samples[0], max_ms: samples.at(-1), samples }));
} finally {
  await browser.close();
  await demo.stop();
}
