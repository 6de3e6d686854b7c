// The panel's API types come from the daemon's OpenAPI document, so a change to the API that the
// panel does not follow fails the panel's type check. These tests type-check a copy of the panel
// against types generated (with openapi-typescript's Node API) from a copy of the document: one
// with a field the panel reads renamed, and, as a control, the document as it is. No browser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import openapiTS, { astToString } from 'openapi-typescript';

const ui = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = join(ui, 'node_modules/typescript/bin/tsc');

function document() {
  return JSON.parse(readFileSync(resolve(ui, '../docs/openapi.json'), 'utf8'));
}

/** `tsc --noEmit` over a copy of the panel whose `src/api-types.ts` is generated from `doc`. */
async function typeCheck(doc) {
  const dir = mkdtempSync(join(tmpdir(), 'porthole-ui-types-'));
  try {
    cpSync(join(ui, 'src'), join(dir, 'src'), { recursive: true });
    cpSync(join(ui, 'tsconfig.json'), join(dir, 'tsconfig.json'));
    symlinkSync(join(ui, 'node_modules'), join(dir, 'node_modules'), 'dir');
    // As `npm run api-types` makes them: an object of no declared fields (WebAuthn's JSON) is `unknown`.
    writeFileSync(join(dir, 'src/api-types.ts'), astToString(await openapiTS(doc, { emptyObjectsUnknown: true })));
    return await new Promise((done) => {
      execFile(process.execPath, [tsc, '--noEmit', '--pretty', 'false', '-p', dir], { timeout: 120_000 }, (err, stdout, stderr) => {
        done({ code: err ? err.code ?? 1 : 0, output: `${stdout}${stderr}` });
      });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('the panel type-checks against the API document as it is', async () => {
  const { code, output } = await typeCheck(document());
  assert.equal(code, 0, output);
});

test("a field renamed in the API document fails the panel's type check, naming it", async () => {
  const doc = document();
  const vm = doc.components.schemas.CustomerVm;
  assert.ok(vm.properties.power && vm.required.includes('power'), 'CustomerVm has a required `power`');
  vm.properties.power_state = vm.properties.power;
  delete vm.properties.power;
  vm.required = vm.required.map((name) => (name === 'power' ? 'power_state' : name));
  const { code, output } = await typeCheck(doc);
  assert.notEqual(code, 0, 'tsc accepted a panel that reads a field the API no longer has');
  const errors = output.split('\n').filter((line) => /error TS\d+/.test(line));
  assert.ok(errors.length > 0, output);
  assert.ok(errors.some((line) => /'power'/.test(line)), `no error names \`power\`:\n${output}`);
  // Only the renamed field is at fault.
  assert.ok(errors.every((line) => /'power'|power_state/.test(line)), output);
});

test("a console close code the daemon no longer sends fails the console page's type check", async () => {
  const doc = document();
  const codes = doc.components.schemas.ConsoleCloseCode;
  assert.ok(codes.enum.includes(4009), 'the daemon sends 4009');
  codes.enum = codes.enum.filter((code) => code !== 4009);
  const { code, output } = await typeCheck(doc);
  assert.notEqual(code, 0, 'tsc accepted words for a close code the daemon does not send');
  assert.match(output, /src\/pages\/console\.ts\(\d+,\d+\): error TS\d+: .*'4009'/);
});
