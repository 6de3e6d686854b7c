// Sign-in form: username and password, errors announced, focus on the first field.
import { api, explain } from '../api';
import { field, h, mount, notice, say } from '../dom';
import { go, signedIn } from '../main';

export function loginPage(): void {
  const username = h('input', { name: 'username', autocomplete: 'username', required: true });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const status = notice();
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
      await api('POST', '/auth/login', { username: username.value, password: password.value });
      await signedIn();
      go('/vms');
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
