// The account's second factors: an authenticator app (enrolled with a QR code or the key typed
// in, confirmed with a code), passkeys, and the recovery codes that come with them (shown once,
// to copy or download). Used by the account page and by the page an operator who must enrol one
// is sent to.
import { api, ApiError, explain, refusal, type Schemas, unwrap } from '../api';
import { confirmDialog, field, h, notice, say, table, time } from '../dom';
import { currentUser } from '../main';
import { browserHasPasskeys, createPasskey, PasskeyError } from '../webauthn';

type Factors = Schemas['SecondFactors'];

export interface FactorOptions {
  /**
   * Called when the account's first second factor has just been enrolled; what it answers (e.g.
   * a way on to where the person was going) is shown under the new recovery codes.
   */
  firstEnrolled?: () => Promise<HTMLElement | null>;
}

/** What the last action left to show at the top of the section. */
interface Shown {
  said?: string;
  kind?: 'ok' | 'error' | 'info';
  /** Recovery codes to show this once, under `title`. */
  codes?: string[];
  title?: string;
  after?: HTMLElement | null;
  /** The id of the element to focus once shown. */
  focus?: string;
}

/** Fills `box` with the account's second factors, loaded now. */
export async function showSecondFactors(box: HTMLElement, options: FactorOptions = {}): Promise<void> {
  box.replaceChildren(h('h2', { id: 'factors-h' }, 'Second factors'), notice('info', 'Loading…'));
  try {
    const factors = await unwrap(api.GET('/account/second-factors'));
    render(box, factors, options, {});
  } catch (err) {
    box.replaceChildren(h('h2', { id: 'factors-h' }, 'Second factors'), notice('error', explain(err)));
  }
}

const hasFactor = (factors: Factors) => factors.totp || factors.passkeys.length > 0;

/** Loads the factors afresh and shows them with `shown`; the first factor enrolled calls `firstEnrolled`. */
async function reload(box: HTMLElement, options: FactorOptions, before: Factors, shown: Shown): Promise<void> {
  let factors: Factors;
  try {
    factors = await unwrap(api.GET('/account/second-factors'));
  } catch (err) {
    // What was done is done: say so, and what failed after.
    render(box, before, options, { ...shown, said: `${shown.said ?? ''} ${explain(err)}`.trim(), kind: 'error' });
    return;
  }
  if (!hasFactor(before) && hasFactor(factors) && options.firstEnrolled) {
    shown = { ...shown, after: await options.firstEnrolled() };
  }
  render(box, factors, options, shown);
}

function render(box: HTMLElement, factors: Factors, options: FactorOptions, shown: Shown): void {
  const status = notice(shown.kind ?? 'ok', shown.said ?? '');
  status.id = 'factors-status';
  status.tabIndex = -1;
  const again = (next: Shown) => reload(box, options, factors, next);
  const fail = (err: unknown) => {
    say(status, refusal(err), 'error');
    status.focus();
  };
  box.replaceChildren(...[
    h('h2', { id: 'factors-h' }, 'Second factors'),
    h('p', { class: 'hint' }, 'With a second factor, signing in takes your password and then a code from an authenticator app or a passkey, so a stolen password alone does not sign anyone in.'),
    // (Without one yet, the page sending them to enrol says so.)
    factors.required && hasFactor(factors)
      ? h('p', { class: 'notice warning', id: 'factors-required' }, 'This panel requires operators to have a second factor: you cannot remove your last one.')
      : null,
    status,
    shown.codes ? recoveryCodes(shown.codes, shown.title ?? 'Your recovery codes', shown.after ?? null) : null,
    h('div', { class: 'factor-cards' },
      authenticator(factors, again, fail),
      passkeys(factors, again, fail),
      hasFactor(factors) ? recovery(factors, again, fail) : null),
  ].filter((child): child is HTMLElement => child !== null));
  if (shown.focus) document.getElementById(shown.focus)?.focus();
  else if (shown.codes) document.getElementById('codes-h')?.focus();
  else if (shown.said) status.focus();
}

type Again = (shown: Shown) => Promise<void>;
type Fail = (err: unknown) => void;

/** The authenticator app: set up (QR code or key, then a code), or remove with the password. */
function authenticator(factors: Factors, again: Again, fail: Fail): HTMLElement {
  const card = h('section', { class: 'card', 'aria-labelledby': 'totp-h' });
  const title = h('h3', { id: 'totp-h', class: 'card-title' }, 'Authenticator app');
  if (factors.totp) {
    const remove = h('button', { type: 'button', class: 'danger', id: 'remove-totp' }, 'Remove authenticator app');
    remove.addEventListener('click', async () => {
      const done = await passwordDialog('Remove the authenticator app?',
        'Sign-in will no longer ask for its codes, and your recovery codes stop working with it.',
        'Remove authenticator app',
        async (password) => { await unwrap(api.POST('/account/totp/remove', { body: { current_password: password } })); });
      if (done) await again({ said: 'Authenticator app removed.' });
      else remove.focus();
    });
    card.append(title,
      h('p', {}, 'An authenticator app is set up: sign-in asks for the 6-digit code it shows.'),
      h('div', { class: 'actions' }, remove));
    return card;
  }
  const start = h('button', { type: 'button', id: 'start-totp' }, 'Set up an authenticator app');
  start.addEventListener('click', async () => {
    start.disabled = true;
    try {
      // The QR code's encoder is loaded when first needed.
      const [enrolment, { qrCode }] = await Promise.all([unwrap(api.POST('/account/totp')), import('../qr')]);
      card.replaceChildren(title, ...enrolForm(enrolment, qrCode, () => again({ focus: 'start-totp' }), again));
      document.getElementById('totp-scan-h')?.focus();
    } catch (err) {
      start.disabled = false;
      fail(err);
    }
  });
  card.append(title,
    h('p', {}, 'An app on your phone, such as a password manager or an authenticator, shows a new 6-digit code every 30 seconds.'),
    h('div', { class: 'actions' }, start));
  return card;
}

type QrCode = typeof import('../qr').qrCode;

/** The key in groups of four, as apps ask for it to be typed. */
function grouped(secret: string): string {
  return secret.replace(/\s/g, '').replace(/(.{4})(?=.)/g, '$1 ');
}

/** Enrolling: the QR code and the key, then a code from the app to confirm. */
function enrolForm(enrolment: Schemas['TotpEnrolment'], qrCode: QrCode, cancel: () => void, again: Again): HTMLElement[] {
  const code = h('input', {
    name: 'code', id: 'totp-confirm-code', inputmode: 'numeric', autocomplete: 'one-time-code', required: true,
    maxlength: 7, pattern: '\\s*[0-9]{3}\\s?[0-9]{3}\\s*', class: 'code', spellcheck: 'false',
  });
  const status = notice();
  status.id = 'totp-status';
  const confirm = h('button', { type: 'submit' }, 'Confirm');
  const form = h('form', { class: 'step', 'aria-labelledby': 'totp-confirm-h' },
    h('h4', { id: 'totp-confirm-h' }, '2. Enter the code the app shows'),
    field('6-digit code', code),
    status,
    h('div', { class: 'actions' }, confirm,
      h('button', { type: 'button', class: 'secondary', onclick: cancel }, 'Cancel')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    confirm.disabled = true;
    say(status, 'Checking the code…', 'info');
    try {
      const { recovery_codes } = await unwrap(api.POST('/account/totp/confirm', { body: { code: code.value.replace(/\s/g, '') } }));
      await again({ said: 'Authenticator app set up: sign-in now asks for its code.', codes: recovery_codes, title: 'Authenticator app set up: your recovery codes' });
    } catch (err) {
      confirm.disabled = false;
      say(status, err instanceof ApiError && err.status === 403
        ? 'That code is not right. Check that the phone’s clock is right, and enter the code the app shows now.'
        : refusal(err), 'error');
      code.select();
    }
  });
  const key = h('code', { id: 'totp-secret', class: 'secret-key' }, grouped(enrolment.secret));
  return [
    h('div', { class: 'enrol' },
      h('div', { class: 'step' },
        h('h4', { id: 'totp-scan-h', tabindex: -1 }, '1. Add Porthole to the app'),
        h('p', {}, 'Scan this QR code with the app:'),
        h('figure', { class: 'qr-frame' }, qrCode(enrolment.otpauth_url, 'QR code to add Porthole to an authenticator app')),
        h('p', { id: 'totp-secret-label' }, 'Or, if it cannot scan, type this key into it (time-based, 6 digits):'),
        h('p', { class: 'key-line' }, key)),
      form),
  ];
}

/** Passkeys: the list, one removed with the password, one added by name. */
function passkeys(factors: Factors, again: Again, fail: Fail): HTMLElement {
  const card = h('section', { class: 'card', 'aria-labelledby': 'passkeys-h' },
    h('h3', { id: 'passkeys-h', class: 'card-title' }, 'Passkeys'));
  const usable = factors.passkeys_available && browserHasPasskeys();
  if (!factors.passkeys_available) {
    card.append(h('p', { class: 'notice info', id: 'passkeys-unavailable' },
      'Passkeys are unavailable on this panel: a passkey belongs to a domain name, and this panel’s public address is an IP address. Use an authenticator app, or ask your provider to serve the panel on a domain name.'));
  } else if (!browserHasPasskeys()) {
    card.append(h('p', { class: 'notice info', id: 'passkeys-unavailable' },
      'This browser cannot make or use passkeys. Use an authenticator app, or a current browser.'));
  } else {
    card.append(h('p', {}, 'A passkey is kept by this device, your phone or a security key, and unlocked with its screen lock.'));
  }
  const remove = async (passkey: Schemas['PasskeyInfo'], button: HTMLButtonElement) => {
    const done = await passwordDialog(`Remove the passkey “${passkey.name}”?`,
      'It will no longer sign you in.', 'Remove passkey',
      async (password) => {
        await unwrap(api.POST('/account/passkeys/{id}/remove', { params: { path: { id: passkey.id } }, body: { current_password: password } }));
      });
    if (done) await again({ said: `Passkey “${passkey.name}” removed.` });
    else button.focus();
  };
  if (factors.passkeys.length) {
    card.append(table(['Name', 'Added', 'Last used', 'Action'], factors.passkeys.map((p) => {
      const button = h('button', { type: 'button', class: 'small danger', 'aria-label': `Remove the passkey ${p.name}` }, 'Remove');
      button.addEventListener('click', () => void remove(p, button));
      return [p.name, time(p.created_at), p.last_used_at ? time(p.last_used_at) : 'never', button];
    }), 'Your passkeys'));
  } else if (usable) {
    card.append(h('p', {}, 'You have no passkeys.'));
  }
  if (!usable) return card;

  const name = h('input', { name: 'passkey_name', required: true, maxlength: 64, autocomplete: 'off', 'aria-describedby': 'passkey-name-hint' });
  const add = h('button', { type: 'submit' }, 'Add a passkey');
  const status = notice();
  status.id = 'passkey-status';
  const form = h('form', { class: 'inline', 'aria-label': 'Add a passkey' },
    field('Passkey name', name), add);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    add.disabled = true;
    say(status, 'Follow your browser’s steps to make the passkey…', 'info');
    try {
      const { options } = await unwrap(api.POST('/account/passkeys/begin', { body: { name: name.value.trim() } }));
      const credential = await createPasskey(options);
      const made = await unwrap(api.POST('/account/passkeys/finish', { body: { credential } }));
      await again(made.recovery_codes
        ? { said: `Passkey “${made.passkey.name}” added.`, codes: made.recovery_codes, title: `Passkey “${made.passkey.name}” added: your recovery codes` }
        : { said: `Passkey “${made.passkey.name}” added.` });
    } catch (err) {
      add.disabled = false;
      say(status, err instanceof PasskeyError ? err.message : refusal(err), 'error');
      name.focus();
    }
  });
  card.append(form,
    h('p', { class: 'hint', id: 'passkey-name-hint' }, 'A name to tell it apart, such as the device it is on.'),
    status);
  return card;
}

/** How many recovery codes are left, and new ones in place of them. */
function recovery(factors: Factors, again: Again, fail: Fail): HTMLElement {
  const left = factors.recovery_codes_left;
  const renew = h('button', { type: 'button', class: 'secondary', id: 'new-recovery-codes' }, 'New recovery codes');
  renew.addEventListener('click', async () => {
    if (left > 0 && !(await confirmDialog('Make new recovery codes? The ones you have stop working.', 'Make new codes'))) {
      renew.focus();
      return;
    }
    renew.disabled = true;
    try {
      const { recovery_codes } = await unwrap(api.POST('/account/recovery-codes'));
      await again({ said: 'New recovery codes made: the old ones no longer work.', codes: recovery_codes, title: 'Your new recovery codes' });
    } catch (err) {
      renew.disabled = false;
      fail(err);
    }
  });
  return h('section', { class: 'card', 'aria-labelledby': 'recovery-h' },
    h('h3', { id: 'recovery-h', class: 'card-title' }, 'Recovery codes'),
    h('p', { id: 'recovery-left', class: left === 0 ? 'notice warning' : undefined },
      left === 0
        ? 'You have no recovery codes left. Make new ones: without them, losing your authenticator or passkey locks you out.'
        : `${left} of 10 recovery codes left.`),
    h('p', { class: 'hint' }, 'Each recovery code signs you in once in place of your authenticator app or passkey, should you lose it.'),
    h('div', { class: 'actions' }, renew));
}

/** Recovery codes just made: shown this once, to copy or download. */
function recoveryCodes(codes: string[], title: string, after: HTMLElement | null): HTMLElement {
  const me = currentUser();
  const text = [
    `Porthole recovery codes for ${me?.username ?? 'your account'} at ${location.host}`,
    `Made ${new Date().toLocaleString()}. Each code signs in once, in place of your second factor.`,
    '',
    ...codes,
    '',
  ].join('\n');
  const copied = h('span', { role: 'status', class: 'hint', id: 'codes-copied' });
  const list = h('ol', { class: 'codes', id: 'recovery-codes-list' }, ...codes.map((c) => h('li', {}, h('code', {}, c))));
  const copy = h('button', { type: 'button', class: 'secondary' }, 'Copy codes');
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(codes.join('\n'));
      copied.textContent = 'Copied.';
    } catch {
      getSelection()?.selectAllChildren(list);
      copied.textContent = 'Selected: copy them with Ctrl+C (⌘C on a Mac).';
    }
  });
  const download = h('a', {
    class: 'button secondary', download: `porthole-recovery-codes-${me?.username ?? 'account'}.txt`,
    href: URL.createObjectURL(new Blob([text], { type: 'text/plain' })),
  }, 'Download as a text file');
  return h('div', { class: 'card new-codes', role: 'region', 'aria-labelledby': 'codes-h' },
    h('h3', { id: 'codes-h', class: 'card-title', tabindex: -1 }, title),
    h('p', { class: 'notice warning', id: 'codes-warning' }, 'Save these codes now, somewhere safe away from this device: they are shown only this once. Each signs you in once should you lose your authenticator app or passkey.'),
    list,
    h('div', { class: 'actions' }, copy, download, copied),
    after);
}

/**
 * A modal asking for the password before `act` (which gets it): a refusal (a wrong password, or
 * the last factor an operator must keep) is said in the dialog. Resolves true once `act` succeeded.
 */
function passwordDialog(question: string, detail: string, confirmLabel: string, act: (password: string) => Promise<void>): Promise<boolean> {
  return new Promise((resolve) => {
    const password = h('input', { type: 'password', name: 'current_password', id: 'dialog-password', autocomplete: 'current-password', required: true });
    const status = notice();
    status.id = 'dialog-status';
    const submit = h('button', { type: 'submit', class: 'danger', 'data-confirm': true }, confirmLabel);
    const dialog = h('dialog', { class: 'confirm', 'aria-labelledby': 'password-dialog-title', 'aria-describedby': 'password-dialog-detail' });
    const done = (answer: boolean) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    const form = h('form', {},
      h('h2', { id: 'password-dialog-title' }, question),
      h('p', { id: 'password-dialog-detail' }, detail),
      field('Your password', password),
      status,
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'secondary', onclick: () => done(false) }, 'Cancel'),
        submit));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      submit.disabled = true;
      say(status, 'Checking…', 'info');
      try {
        await act(password.value);
        done(true);
      } catch (err) {
        submit.disabled = false;
        say(status, refusal(err), 'error');
        password.select();
      }
    });
    dialog.append(form);
    dialog.addEventListener('cancel', () => done(false));
    document.body.append(dialog);
    dialog.showModal();
    password.focus();
  });
}
