// Tiny DOM helpers: element construction without innerHTML, dialogs and status messages.

type Child = Node | string | null | undefined | false;
type Attrs = Record<string, string | boolean | number | EventListener | undefined>;

/** Creates an element; `on*` attributes become listeners, booleans toggle attributes. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value as EventListener);
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child);
  }
  return el;
}

/** Replaces the page content and moves focus to the first heading for screen readers. */
export function mount(...children: Child[]): HTMLElement {
  const main = document.getElementById('main') as HTMLElement;
  main.replaceChildren();
  for (const child of children) if (child) main.append(child);
  const heading = main.querySelector('h1');
  if (heading) {
    heading.setAttribute('tabindex', '-1');
  }
  return main;
}

/** A live region that announces status and errors. */
export function notice(kind: 'info' | 'error' | 'ok' = 'info', text = ''): HTMLElement {
  return h('p', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status', hidden: text === '' }, text);
}

export function say(el: HTMLElement, text: string, kind?: 'info' | 'error' | 'ok'): void {
  el.textContent = text;
  el.hidden = text === '';
  if (kind) el.className = `notice ${kind}`;
}

/** A modal confirmation; resolves true when confirmed. */
export function confirmDialog(question: string, confirmLabel: string): Promise<boolean> {
  return new Promise((resolve) => {
    const dialog = h('dialog', { class: 'confirm', 'aria-labelledby': 'confirm-title' });
    const done = (answer: boolean) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    dialog.append(
      h('h2', { id: 'confirm-title' }, question),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'secondary', onclick: () => done(false) }, 'Cancel'),
        h('button', { type: 'button', class: 'danger', 'data-confirm': true, onclick: () => done(true) }, confirmLabel),
      ),
    );
    dialog.addEventListener('cancel', () => done(false));
    document.body.append(dialog);
    dialog.showModal();
  });
}

export function table(headers: string[], rows: Child[][], caption?: string): HTMLElement {
  return h('div', { class: 'table-wrap' },
    h('table', {},
      caption ? h('caption', {}, caption) : null,
      h('thead', {}, h('tr', {}, ...headers.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, ...rows.map((r) => h('tr', {}, ...r.map((c) => h('td', {}, c))))),
    ),
  );
}

export function field(label: string, input: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement): HTMLElement {
  const id = input.id || `f-${label.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  input.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), input);
}

export function time(unixSecs: number | null | undefined): string {
  if (!unixSecs) return '';
  return new Date(unixSecs * 1000).toLocaleString();
}

export function badge(text: string): HTMLElement {
  return h('span', { class: `badge b-${text.replace(/[^a-z_-]/gi, '')}` }, text);
}

/** A byte count in the largest unit that keeps it readable. */
export function bytes(n: number | null | undefined): string {
  if (!n) return '';
  for (const [unit, size] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) {
    const value = n / size;
    if (value >= 1) return `${value.toFixed(value % 1 && value < 10 ? 1 : 0)} ${unit}`;
  }
  return `${n} B`;
}

/** A JSON object as a short list of `key: value` lines that wrap instead of running off the page. */
export function details(value: unknown): HTMLElement | string {
  if (value === null || typeof value !== 'object') return value === null || value === undefined ? '' : String(value);
  const entries = Object.entries(value);
  if (entries.length === 0) return '';
  return h('dl', { class: 'details' }, ...entries.flatMap(([key, v]) => [
    h('dt', {}, key.replace(/_/g, ' ')),
    h('dd', {}, typeof v === 'string' ? v : JSON.stringify(v)),
  ]));
}

/**
 * A modal confirmation for what cannot be undone: the person types `expected` (a name they can
 * see on the page) before the confirm button works, so a stray click or Enter never destroys
 * anything. Resolves true when confirmed.
 */
export function typedConfirm(question: string, detail: string, expected: string, confirmLabel: string): Promise<boolean> {
  return new Promise((resolve) => {
    const typed = h('input', { name: 'confirm', id: 'typed-confirm', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off', required: true, 'aria-describedby': 'typed-confirm-detail' });
    const submit = h('button', { type: 'submit', class: 'danger', 'data-confirm': true, disabled: true }, confirmLabel);
    const dialog = h('dialog', { class: 'confirm', 'aria-labelledby': 'typed-confirm-title', 'aria-describedby': 'typed-confirm-detail' });
    const done = (answer: boolean) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    // Enabled only on an exact match: the name is the whole point of asking.
    typed.addEventListener('input', () => { submit.disabled = typed.value !== expected; });
    const form = h('form', {},
      h('h2', { id: 'typed-confirm-title' }, question),
      h('p', { id: 'typed-confirm-detail' }, detail),
      field(`Type ${expected} to confirm`, typed),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'secondary', onclick: () => done(false) }, 'Cancel'),
        submit));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      if (typed.value === expected) done(true);
    });
    dialog.append(form);
    dialog.addEventListener('cancel', () => done(false));
    document.body.append(dialog);
    dialog.showModal();
    typed.focus();
  });
}

/**
 * A secret the daemon gives this once (a password): shown in a read-only field with a Copy
 * button and a warning that it will not be shown again. `id` names the field, for tests and
 * for moving focus to it.
 */
export function shownOnce(title: string, label: string, secret: string, id: string): HTMLElement {
  const value = h('input', { id, class: 'secret', readonly: true, value: secret, spellcheck: 'false', autocomplete: 'off', 'aria-describedby': `${id}-warning` });
  value.addEventListener('focus', () => value.select());
  const copied = h('span', { role: 'status', class: 'hint' });
  const copy = h('button', { type: 'button', class: 'secondary', onclick: async () => {
    try {
      await navigator.clipboard.writeText(secret);
      copied.textContent = 'Copied.';
    } catch {
      value.focus();
      copied.textContent = 'Selected: copy it with Ctrl+C (⌘C on a Mac).';
    }
  } }, 'Copy');
  return h('div', { class: 'card shown-once', role: 'region', 'aria-label': title },
    h('h3', { class: 'card-title' }, title),
    h('p', { class: 'notice warning', id: `${id}-warning` }, 'Copy it now and keep it safe: it will not be shown again.'),
    field(label, value),
    h('div', { class: 'actions' }, copy, copied));
}
