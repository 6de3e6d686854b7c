// Sign-in: the username and password, then, for an account with a second factor, a second step
// (a code from the authenticator app, a passkey or a recovery code). Errors are announced and
// focus goes to the field to fix; a second step that expired starts again at the password.
import { api, ApiError, explain, type Schemas, sentence, unwrap } from '../api';
import { field, h, mount, notice, say } from '../dom';
import { go, panelPath, signedIn } from '../main';
import { browserHasPasskeys, PasskeyError, usePasskey } from '../webauthn';

type Said = { kind: 'info' | 'error'; text: string };

export function loginPage(): void {
  const query = new URLSearchParams(location.search);
  const destination = panelPath(query.get('next'));
  passwordStep(destination, '', query.has('expired') ? { kind: 'info', text: 'Your session has ended. Please sign in again.' } : undefined);
}

/** The first step: username and password. `username` is kept when a sign-in starts again. */
function passwordStep(destination: string, name: string, said?: Said): void {
  const username = h('input', { name: 'username', autocomplete: 'username', required: true, value: name });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const status = said ? notice(said.kind, said.text) : notice();
  const submit = h('button', { type: 'submit' }, 'Sign in');
  const form = h('form', { class: 'card narrow', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Sign in to Porthole'),
    field('Username', username),
    field('Password', password),
    status,
    submit,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    say(status, 'Signing in…', 'info');
    try {
      const call = api.POST('/auth/login', { body: { username: username.value, password: password.value } });
      const answer = await unwrap(call);
      if ('second_factor' in answer) {
        secondStep(answer.second_factor, lifetime(answer.second_factor, (await call).response), username.value, destination);
        return;
      }
      await signedIn();
      go(destination);
    } catch (err) {
      say(status, explain(err).replace('Please sign in again.', 'Wrong username or password.'), 'error');
      password.select();
    } finally {
      submit.disabled = false;
    }
  });
  mount(form);
  (name ? password : username).focus();
}

/**
 * How long the challenge lasts from now, in milliseconds: its `expires_at` by the daemon's clock
 * (the answer's `Date`), so a browser whose clock is wrong neither cuts it short nor overruns it.
 */
function lifetime(challenge: Schemas['Challenge'], response: Response): number {
  const daemonNow = Date.parse(response.headers.get('date') ?? '');
  const left = challenge.expires_at * 1000 - (Number.isFinite(daemonNow) ? daemonNow : Date.now());
  return Math.min(Math.max(left, 0), 5 * 60 * 1000);
}

/** What the second step sends with the challenge: one of the three. */
type Factor = Omit<Schemas['SecondFactorAnswer'], 'challenge'>;

/** The second step: whichever of the account's second factors it chooses. */
function secondStep(challenge: Schemas['Challenge'], lifetimeMs: number, username: string, destination: string): void {
  const methods = new Set(challenge.methods);
  const status = notice();
  status.id = 'second-step-status';
  const startAgain = (text: string) => passwordStep(destination, username, { kind: 'error', text });
  const expiredText = 'This sign-in has expired: a second step lasts 5 minutes and 5 codes. Enter your password again.';
  const deadline = performance.now() + lifetimeMs;
  const expired = () => performance.now() >= deadline;

  /** Sends `factor`; signed in, goes on to the destination, else says why and lets them retry. */
  const complete = async (factor: Factor, button: HTMLButtonElement, retry?: HTMLInputElement, refused?: string) => {
    if (expired()) {
      startAgain(expiredText);
      return;
    }
    button.disabled = true;
    say(status, 'Checking…', 'info');
    try {
      await unwrap(api.POST('/auth/second-factor', { body: { challenge: challenge.challenge, ...factor } }));
      await signedIn();
      go(destination);
    } catch (err) {
      // The daemon names a challenge that is spent (expired, or too many codes): start again.
      if (err instanceof ApiError && err.status === 401 && /expired|sign in again/i.test(err.message)) {
        startAgain(sentence(err.message));
        return;
      }
      say(status, err instanceof ApiError && err.status === 401 ? refused ?? sentence(err.message) : explain(err), 'error');
      if (retry) retry.select();
      else button.focus();
    } finally {
      button.disabled = false;
    }
  };

  const parts: HTMLElement[] = [];
  let first: HTMLElement | null = null;

  if (methods.has('totp')) {
    const code = h('input', {
      name: 'totp', inputmode: 'numeric', autocomplete: 'one-time-code', required: true, maxlength: 7,
      pattern: '\\s*[0-9]{3}\\s?[0-9]{3}\\s*', class: 'code', spellcheck: 'false', 'aria-describedby': 'totp-hint',
    });
    const verify = h('button', { type: 'submit' }, 'Verify code');
    const form = h('form', { class: 'step' },
      field('Code from your authenticator app', code),
      h('p', { class: 'hint', id: 'totp-hint' }, 'The 6 digits the app shows for Porthole now.'),
      verify);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      void complete({ totp: code.value.replace(/\s/g, '') }, verify, code);
    });
    parts.push(form);
    first = code;
  }

  if (methods.has('passkey')) {
    const use = h('button', { type: 'button', class: methods.has('totp') ? 'secondary' : undefined, id: 'use-passkey' }, 'Use a passkey');
    use.addEventListener('click', async () => {
      if (!browserHasPasskeys()) {
        say(status, 'This browser cannot use passkeys. Use another way below, or another browser.', 'error');
        return;
      }
      if (expired()) {
        startAgain(expiredText);
        return;
      }
      use.disabled = true;
      say(status, 'Waiting for your passkey…', 'info');
      let credential: Record<string, unknown>;
      try {
        const { options } = await unwrap(api.POST('/auth/second-factor/passkey', { body: { challenge: challenge.challenge } }));
        credential = await usePasskey(options);
      } catch (err) {
        use.disabled = false;
        if (err instanceof ApiError && err.status === 401) {
          startAgain(sentence(err.message));
          return;
        }
        say(status, err instanceof PasskeyError ? err.message : explain(err), 'error');
        use.focus();
        return;
      }
      use.disabled = false;
      await complete({ passkey: credential }, use, undefined, 'This passkey was not accepted: use one you added to this account.');
    });
    parts.push(h('div', { class: 'actions step' }, use));
    first ??= use;
  }

  if (methods.has('recovery_code')) {
    const code = h('input', {
      name: 'recovery_code', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false', required: true,
      placeholder: 'xxxx-xxxx-xxxx-xxxx', class: 'code recovery', 'aria-describedby': 'recovery-hint',
    });
    const submit = h('button', { type: 'submit' }, 'Use recovery code');
    const form = h('form', { class: 'step', id: 'recovery-form' },
      field('Recovery code', code),
      h('p', { class: 'hint', id: 'recovery-hint' }, 'One of the codes you saved when you set up your second factor. Each works once.'),
      submit);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      void complete({ recovery_code: code.value.trim() }, submit, code);
    });
    if (first) {
      // Offered, not shown: most sign-ins use the app or a passkey.
      form.hidden = true;
      const reveal = h('button', { type: 'button', class: 'link', 'aria-expanded': 'false', 'aria-controls': 'recovery-form' }, 'Use a recovery code');
      reveal.addEventListener('click', () => {
        form.hidden = false;
        reveal.setAttribute('aria-expanded', 'true');
        reveal.hidden = true;
        code.focus();
      });
      parts.push(h('p', { class: 'step' }, reveal));
    } else {
      first = code;
    }
    parts.push(form);
  }

  if (methods.size === 0) {
    say(status, 'None of this account’s second factors can be used on this panel: a passkey needs the panel on a domain name, and there are no recovery codes left. Ask an operator for help.', 'error');
  }

  const again = h('button', { type: 'button', class: 'link', onclick: () => passwordStep(destination, username) }, 'Start again with the password');
  const card = h('section', { class: 'card narrow', 'aria-labelledby': 'login-title', id: 'second-step' },
    h('h1', { id: 'login-title' }, 'Confirm your sign-in'),
    h('p', {}, `Password accepted for ${username}. Finish signing in with your second factor.`),
    ...parts,
    status,
    h('p', { class: 'step' }, again));
  mount(card);
  (first ?? again).focus();

  // The challenge lasts 5 minutes: past that, back to the password, saying why.
  window.setTimeout(() => {
    if (card.isConnected) startAgain(expiredText);
  }, lifetimeMs);
}
