// Sign-in form: username and password, errors announced, focus on the first field.
import { api, explain, unwrap } from '../api';
import { field, h, mount, notice, say } from '../dom';
import { go, signedIn } from '../main';

export function loginPage(): void {
  const username = h('input', { name: 'username', autocomplete: 'username', required: true });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const query = new URLSearchParams(location.search);
  const status = query.has('expired') ? notice('info', 'Your session has ended. Please sign in again.') : notice();
  // Only a path of the panel itself: never a link off-site.
  const next = query.get('next') ?? '';
  const destination = /^\/[a-z0-9/-]*$/i.test(next) && !next.startsWith('//') && next !== '/login' ? next : '/vms';
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
      await unwrap(api.POST('/auth/login', { body: { username: username.value, password: password.value } }));
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
  username.focus();
}
